"""Precision and recall per statement kind on our own labelled multilingual set.

    .venv/bin/python bench/kinds_quality.py [--file tests/fixtures/nlp/kinds.jsonl] [--no-proto]

Prints a per-kind table overall and per language. Not a test: figures go to the README.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def report(rows: list[dict], pred: list[str], title: str) -> None:
    from nlp.types import KINDS

    acc = sum(p == r["kind"] for p, r in zip(pred, rows, strict=True)) / max(len(rows), 1)
    print(f"\n{title} (n={len(rows)}, accuracy {acc:.2f})")
    print(f"{'kind':16s} {'prec':>6s} {'recall':>6s} {'n':>4s}")
    for k in KINDS:
        tp = sum(p == k and r["kind"] == k for p, r in zip(pred, rows, strict=True))
        fp = sum(p == k and r["kind"] != k for p, r in zip(pred, rows, strict=True))
        fn = sum(p != k and r["kind"] == k for p, r in zip(pred, rows, strict=True))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        print(f"{k:16s} {prec:6.2f} {rec:6.2f} {tp + fn:4d}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", default=str(ROOT / "tests/fixtures/nlp/kinds.jsonl"))
    ap.add_argument("--no-proto", action="store_true", help="cue lexicons only")
    ap.add_argument("--other-bonus", type=float, default=None)
    args = ap.parse_args()
    lines = Path(args.file).read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    from nlp.kinds import KindClassifier

    emb = None
    clf = KindClassifier()
    if not args.no_proto:
        from nlp.embed import TorchEmbedder
        from nlp.model import ensure_model

        e = TorchEmbedder(ensure_model())
        clf = KindClassifier(encode=e.encode)
        if args.other_bonus is not None:
            clf.other_bonus = args.other_bonus
        emb = e.encode([r["text"] for r in rows])
    res = clf.classify([r["text"] for r in rows], [r["language"] for r in rows], emb)
    pred = [k for k, _ in res]
    report(rows, pred, "all languages")
    for lang in sorted({r["language"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["language"] == lang]
        acc = sum(pred[i] == rows[i]["kind"] for i in idx) / len(idx)
        print(f"{lang}: accuracy {acc:.2f} (n={len(idx)})")
    confusion = Counter((r["kind"], p) for r, p in zip(rows, pred, strict=True) if r["kind"] != p)
    print("\nmost common confusions (true -> predicted):", confusion.most_common(6))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
