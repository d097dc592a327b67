"""Note → statements under a theme, end to end: ``POST /v1/cycles/{c}/meetings/{m}/notes``
over HTTP → the cycle workflow's update → the ``assign_note_themes`` activity on the
worker (segment, embed through the pgvector cache, classify, assign to the stored
ThemeModel, write) → the note's statements visible in PostgreSQL with a theme.

Set-up: a real stack (``bench/stack.py``: PostgreSQL, Temporal dev server, one
worker, the API) on free loopback ports. The project's multilingual fixture plus
SIB-200 sentences are ingested and mined once through ``POST /v1/mining-runs``
(so the worker's model is warm and a ThemeModel is stored); a cycle with a
kickoff meeting is started. Then notes of 5 statements (unseen SIB-200 dev
sentences in en/sv/pl, so encoding really happens) are submitted one at a time;
each one's latency runs from sending the POST until its statements are in the
``statements`` table (polled every 20 ms), and how many got a theme is counted.
The first 3 notes are warm-up and not counted.

    .venv/bin/python bench/assign_latency.py [--notes 30] [--background 300]
    .venv/bin/python bench/assign_latency.py --activity-only   # no stack: the activity alone
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _service_bench import FIXTURES, fresh_database, jsonl, percentile, settings_for, sib_notes

PARTNERS = ["org-a", "org-b", "org-c"]


def dev_notes(count: int) -> list[dict[str, Any]]:
    dev = sib_notes(200, splits=("dev",), langs=("eng_Latn", "swe_Latn", "pol_Latn"))
    out = []
    for k in range(count):
        chunk = dev[k * 5 : k * 5 + 5]
        out.append(dict(chunk[0], id=f"lat-{k}", text="\n".join("- " + c["text"] for c in chunk)))
    return out


async def ingest_background(url: str, per_language: int) -> int:
    from activities.mining import MiningActivities
    from nlp.types import NoteIn
    from peerlearn import db
    from peerlearn.mining import miner as miners

    settings = settings_for(url)
    pool = await db.open_pool(url)
    await miners.get_miner_async(settings)
    acts = MiningActivities(pool, settings)
    base = jsonl(FIXTURES / "mining_notes.jsonl") + sib_notes(per_language)
    n = 0
    for i in range(0, len(base), 256):
        n += sum(
            o.statement_count
            for o in await acts.ingest_notes([NoteIn.from_dict(n) for n in base[i : i + 256]])
        )
    await pool.close()
    return n


def full_path(args: argparse.Namespace) -> None:
    import httpx
    import psycopg

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench.stack import new_stack
    from peerlearn import keys

    stack = new_stack()
    print(f"starting the stack in {stack.home}", flush=True)
    stack.start()
    try:
        url = stack.database_url()
        _, admin = keys.create_key(url, "admin", name="assign-latency")
        http = httpx.Client(
            base_url=stack.api_url, timeout=60, headers={"Authorization": f"Bearer {admin}"}
        )
        r = http.post(
            "/v1/programmes",
            json={
                "id": "lat",
                "name": "Latency",
                "time_zone": "Europe/Stockholm",
                "languages": ["en", "sv", "pl"],
                "partners": [{"id": p, "name": p.upper(), "country": "SE"} for p in PARTNERS],
            },
        )
        assert r.status_code in (201, 409), r.text
        starts = datetime.now(UTC) + timedelta(seconds=45)
        day = 1 / 1440
        r = http.post(
            "/v1/cycles",
            json={
                "cycle_id": "lat-1",
                "programme_id": "lat",
                "title": "Latency cycle",
                "meetings": [
                    {
                        "meeting_id": "kickoff",
                        "kind": "kickoff",
                        "format": "online",
                        "starts_at": starts.isoformat(),
                        "duration_minutes": 1,
                    }
                ],
                "policies": {
                    "notes_due_after_days": 120 * day,
                    "reminder_offsets_days": [60 * day],
                    "prep_pack_lead_days": 0.2 * day,
                    "self_assessment_lead_days": 0.3 * day,
                    "follow_up_after_days": 120 * day,
                },
            },
        )
        assert r.status_code == 201, r.text
        t = time.perf_counter()
        n = asyncio.run(ingest_background(url, args.background))
        print(f"background ingested: {n} statements in {time.perf_counter() - t:.0f}s", flush=True)
        t = time.perf_counter()
        run = http.post("/v1/mining-runs", json={"scope": "all"}).json()
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            st = http.get(f"/v1/mining-runs/{run['id']}").json()
            if st["status"] != "running":
                break
            time.sleep(1)
        assert st["status"] == "completed", st
        print(
            f"mined by the worker: {st['theme_count']} themes in {time.perf_counter() - t:.0f}s",
            flush=True,
        )
        wait = (starts + timedelta(seconds=5) - datetime.now(UTC)).total_seconds()
        time.sleep(max(0.0, wait))
        notes = dev_notes(args.notes + 3)
        post_ms: list[float] = []
        visible_ms: list[float] = []
        assigned = total = 0
        with psycopg.connect(url, autocommit=True) as db:
            for k, note in enumerate(notes):
                body = {
                    "author_organisation": PARTNERS[k % 3],
                    "language": note["language"],
                    "text": note["text"],
                }
                path = "/v1/cycles/lat-1/meetings/kickoff/notes"
                for _ in range(200):  # the meeting may not count as held yet: 409, retry
                    t0 = time.perf_counter()
                    r = http.post(path, json=body, headers={"Idempotency-Key": f"lat-{k}"})
                    if r.status_code != 409:
                        break
                    time.sleep(0.5)
                assert r.status_code in (200, 201), r.text
                t1 = time.perf_counter()
                note_id = r.json()["note_id"]
                row: tuple[Any, ...] | None = None
                until = time.monotonic() + 60
                while time.monotonic() < until:
                    row = db.execute(
                        "SELECT count(*), count(theme_id) FROM statements WHERE note_id = %s",
                        (note_id,),
                    ).fetchone()
                    if row and row[0]:
                        break
                    time.sleep(0.02)
                t2 = time.perf_counter()
                assert row and row[0], f"note {note_id}: no statements after 60 s"
                if k >= 3:
                    post_ms.append((t1 - t0) * 1000)
                    visible_ms.append((t2 - t0) * 1000)
                    total += row[0]
                    assigned += row[1]
        print(
            f"notes: {len(visible_ms)} of 5 statements (new texts, encoded on submission),"
            " one at a time"
        )
        print(f"statements under a theme: {assigned}/{total}")
        print(
            f"POST answered, ms:          p50 {percentile(post_ms, 50):.0f}  "
            f"p95 {percentile(post_ms, 95):.0f}  max {max(post_ms):.0f}"
        )
        print(
            f"statements visible, ms:     p50 {percentile(visible_ms, 50):.0f}  "
            f"p95 {percentile(visible_ms, 95):.0f}  max {max(visible_ms):.0f}"
        )
    finally:
        stack.stop()


async def activity_only(args: argparse.Namespace) -> None:
    """The activity's work alone (no stack, no Temporal), for comparison."""
    from temporalio.testing import ActivityEnvironment

    from activities.mining import MiningActivities
    from nlp.types import NoteIn
    from peerlearn import db
    from peerlearn.mining import miner as miners
    from workflows.mining import MiningBatchInput, MiningClusterInput, MiningPrepareInput

    url = fresh_database()
    settings = settings_for(url)
    pool = await db.open_pool(url)
    await miners.get_miner_async(settings)
    acts = MiningActivities(pool, settings)
    base = jsonl(FIXTURES / "mining_notes.jsonl") + sib_notes(args.background)
    for i in range(0, len(base), 256):
        await acts.ingest_notes([NoteIn.from_dict(n) for n in base[i : i + 256]])
    env = ActivityEnvironment()
    prep = await env.run(acts.mining_prepare, MiningPrepareInput("lat", "all", "bench", 512))
    for off in prep.batches:
        await env.run(acts.mining_encode_batch, MiningBatchInput("lat", "all", off, 512))
    res = await env.run(acts.mining_cluster, MiningClusterInput("lat", "all", 0))
    print(f"background: {prep.total} statements, {res.theme_count} themes")
    times, assigned, total = [], 0, 0
    for k, meta in enumerate(dev_notes(args.notes + 3)):
        t = time.perf_counter()
        out = await acts.ingest_note(NoteIn.from_dict(meta))
        if k >= 3:
            times.append((time.perf_counter() - t) * 1000)
            total += out.statement_count
            assigned += out.statement_count - out.unassigned
    await pool.close()
    print(f"activity only: {len(times)} notes of 5 statements; under a theme {assigned}/{total}")
    print(
        f"latency ms: p50 {percentile(times, 50):.0f}  p95 {percentile(times, 95):.0f}  "
        f"max {max(times):.0f}"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--notes", type=int, default=30)
    ap.add_argument("--background", type=int, default=300, help="SIB-200 sentences per language")
    ap.add_argument("--activity-only", action="store_true")
    a = ap.parse_args()
    if a.activity_only:
        asyncio.run(activity_only(a))
    else:
        full_path(a)
    os._exit(0)
