"""Shared set-up of the service benchmarks: an embedded PostgreSQL in
.peerlearn/bench-pg, a fresh migrated database, the miner and the activities."""

from __future__ import annotations

import csv
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import psycopg  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

from peerlearn import db  # noqa: E402
from peerlearn.settings import Settings  # noqa: E402

SIB = Path(os.environ.get("PEERLEARN_SIB_DIR", REPO.parent / "shared" / "data" / "sib200"))
FIXTURES = REPO / "tests" / "fixtures"
LANGS = {
    "eng_Latn": "en",
    "swe_Latn": "sv",
    "pol_Latn": "pl",
    "deu_Latn": "de",
    "est_Latn": "et",
    "fra_Latn": "fr",
}


def fresh_database() -> str:
    base = REPO / ".peerlearn" / "bench-pg"
    server = db.embedded_uri(base, keep_running=True)
    db.wait_for_database(server)
    name = "bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(server, dbname=name)
    db.migrate(url)
    return url


def settings_for(url: str, **kw: Any) -> Settings:
    values: dict[str, Any] = {"DATABASE_URL": url, **kw}
    model = os.environ.get("PEERLEARN_MODEL_DIR")
    values.setdefault(
        "model_dir",
        Path(model) if model else REPO / ".peerlearn" / "models" / "multilingual-e5-small",
    )
    return Settings(**values)


def jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def sib_notes(
    per_language: int,
    splits: tuple[str, ...] = ("train",),
    langs: tuple[str, ...] = ("eng_Latn", "swe_Latn", "pol_Latn", "deu_Latn"),
    programmes: int = 4,
) -> list[dict[str, Any]]:
    """SIB-200 sentences as one-statement notes spread over programmes, cycles,
    organisations and months (distractors / volume for the benchmarks)."""
    notes = []
    for lang in langs:
        rows: list[dict[str, str]] = []
        for split in splits:
            with open(SIB / lang / f"{split}.tsv", encoding="utf-8") as fh:
                rows += list(csv.DictReader(fh, delimiter="\t"))
        for i, r in enumerate(rows[:per_language]):
            k = int(r["index_id"])
            notes.append(
                {
                    "id": f"sib-{lang}-{r['index_id']}-{i}",
                    "text": r["text"],
                    "language": LANGS[lang],
                    "programme": f"prog-{k % programmes}",
                    "cycle": f"cyc-{k % (programmes * 3)}",
                    "meeting": f"meet-{k % 40}",
                    "organisation": f"org-{LANGS[lang]}-{k % 7}",
                    "date": f"2024-{(k % 12) + 1:02d}-15",
                }
            )
    return notes


def percentile(values: list[float], p: float) -> float:
    xs = sorted(values)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)
