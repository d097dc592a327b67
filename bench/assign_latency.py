"""Latency of mining a submitted note: segment, embed (pgvector cache first),
classify, assign to the stored ThemeModel, write statements — i.e. the
``assign_note_themes`` activity's work, from note text to statements under a theme.

Set-up: the project's multilingual fixture plus SIB-200 sentences are ingested
and mined once (warm model, a ThemeModel in the database). Then new notes of 5
statements (unseen SIB-200 dev sentences, so encoding really happens) are
submitted one at a time.

    .venv/bin/python bench/assign_latency.py [--notes 40] [--background 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from _service_bench import FIXTURES, fresh_database, jsonl, percentile, settings_for, sib_notes


async def main(args: argparse.Namespace) -> None:
    from temporalio.testing import ActivityEnvironment

    from activities.mining import MiningActivities
    from peerlearn import db, miner_service
    from workflows.mining import MiningBatchInput, MiningClusterInput, MiningPrepareInput

    url = fresh_database()
    settings = settings_for(url)
    pool = await db.open_pool(url)
    t = time.perf_counter()
    await miner_service.get_miner_async(settings)
    print(f"model + miner warm-up: {time.perf_counter() - t:.1f}s (once per process)")
    acts = MiningActivities(pool, settings)
    base = jsonl(FIXTURES / "mining_notes.jsonl") + sib_notes(args.background)
    for i in range(0, len(base), 256):
        await acts.ingest_notes(base[i : i + 256])
    env = ActivityEnvironment()
    prep = await env.run(acts.mining_prepare, MiningPrepareInput("lat", "all", "bench", 512))
    for off in prep.batches:
        await env.run(acts.mining_encode_batch, MiningBatchInput("lat", "all", off, 512))
    res = await env.run(acts.mining_cluster, MiningClusterInput("lat", "all", 0))
    print(f"background: {prep.total} statements, {res.theme_count} themes")
    dev = sib_notes(200, splits=("dev",), langs=("eng_Latn", "swe_Latn", "pol_Latn"))
    times, assigned, total = [], 0, 0
    for k in range(args.notes + 3):
        chunk = dev[k * 5 : k * 5 + 5]
        meta = dict(chunk[0], id=f"lat-{k}", text="\n".join("- " + c["text"] for c in chunk))
        t = time.perf_counter()
        out = await acts.ingest_note(meta)
        dt = time.perf_counter() - t
        if k >= 3:  # the first notes warm caches (lingua, tokenizer paths)
            times.append(dt * 1000)
            total += out.statement_count
            assigned += out.statement_count - out.unassigned
    await pool.close()
    print(f"notes: {len(times)} of 5 statements (new texts, encoded on submission)")
    print(f"assigned to a theme: {assigned}/{total}")
    print(f"latency ms: p50 {percentile(times, 50):.0f}  p95 {percentile(times, 95):.0f}  "
          f"max {max(times):.0f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--notes", type=int, default=40)
    ap.add_argument("--background", type=int, default=300, help="SIB-200 sentences per language")
    asyncio.run(main(ap.parse_args()))
    os._exit(0)
