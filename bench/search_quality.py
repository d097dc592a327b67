"""Search quality: recall@10 of GET /v1/search on the project's cross-lingual query set.

Each query (tests/fixtures/search_queries.jsonl, written for this project in
pl/sv/en/de) has relevant statements in the *other* languages
(tests/fixtures/search_corpus.jsonl). They are mixed with SIB-200 sentences as
distractors, mined, and every query goes through the real API (in-process).

    .venv/bin/python bench/search_quality.py [--distractors 700]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from _service_bench import FIXTURES, fresh_database, jsonl, settings_for, sib_notes


async def main(args: argparse.Namespace) -> None:
    import httpx

    from activities.mining import MiningActivities
    from api.main import create_app
    from nlp.types import NoteIn
    from peerlearn import db
    from peerlearn.keys import create_key
    from peerlearn.mining import miner as miners
    from workflows.mining import MiningBatchInput, MiningClusterInput, MiningPrepareInput

    url = fresh_database()
    settings = settings_for(url)
    pool = await db.open_pool(url)
    await miners.get_miner_async(settings)
    acts = MiningActivities(pool, settings)
    corpus = jsonl(FIXTURES / "search_corpus.jsonl")
    notes = [
        {
            "id": c["id"],
            "text": c["text"],
            "language": c["language"],
            "programme": "bench",
            "cycle": "bench-1",
            "meeting": "m1",
            "organisation": f"org-{c['language']}",
            "date": "2024-05-01",
        }
        for c in corpus
    ]
    notes += sib_notes(args.distractors)
    t0 = time.perf_counter()
    for i in range(0, len(notes), 256):
        await acts.ingest_notes([NoteIn.from_dict(n) for n in notes[i : i + 256]])
    t_ingest = time.perf_counter() - t0
    if not args.no_mine:
        from temporalio.testing import ActivityEnvironment

        env = ActivityEnvironment()
        prep = await env.run(acts.mining_prepare, MiningPrepareInput("sq", "all", "bench", 512))
        for off in prep.batches:
            await env.run(acts.mining_encode_batch, MiningBatchInput("sq", "all", off, 512))
        await env.run(acts.mining_cluster, MiningClusterInput("sq", "all", 0))
    _, token = create_key(url, "admin", name="bench")
    app = create_app(settings)
    queries = jsonl(FIXTURES / "search_queries.jsonl")
    recalls, rr = [], []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://x", headers={"Authorization": f"Bearer {token}"}
        ) as c:
            for q in queries:
                r = await c.get("/v1/search", params={"q": q["query"], "limit": 10})
                r.raise_for_status()
                got = [h["note_id"] for h in r.json()["items"]]
                rel = set(q["relevant"])
                recalls.append(len(rel & set(got)) / len(rel))
                first = next((k for k, g in enumerate(got, 1) if g in rel), None)
                rr.append(1 / first if first else 0.0)
                if args.verbose:
                    print(f"{recalls[-1]:.2f}  [{q['language']}] {q['query']}")
    await pool.close()
    n = len(notes)
    print(
        f"statements: {n} ({len(corpus)} relevant-set, {n - len(corpus)} SIB-200 distractors);"
        f" ingest {t_ingest:.1f}s"
    )
    print(f"queries: {len(queries)} (pl/sv/en/de, relevant statements in other languages)")
    print(f"recall@10 = {sum(recalls) / len(recalls):.3f}   MRR = {sum(rr) / len(rr):.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--distractors", type=int, default=700, help="SIB-200 sentences per language")
    ap.add_argument("--no-mine", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    asyncio.run(main(ap.parse_args()))
    os._exit(0)
