"""API latency under load: GET /v1/themes and GET /v1/search at ~50 requests/s with
about 10k statements mined, measured with wrk (a real load tool) on loopback.

Set-up: SIB-200 train+dev sentences in six languages (~5k distinct texts) are
ingested twice under different programmes (10k+ statements; the second copy
hits the embedding cache) plus the project's fixtures, then mined. The API
runs in its own uvicorn process (h11, no access log, log level warning); wrk
paces 12 connections with a 200 ms delay before each request (wrk's timers add a
few ms), so at ~15 ms per answer they offer ≈50 req/s (wrk needs `apt-get
install wrk`), for each mode: themes only, search only, and a 50/50 mix. The
achieved rate is printed with the percentiles. Search queries repeat (the LRU of query
embeddings is warmed first, as in steady state).

The themes requests include `programme=prog-1-0` (programmes are named
`prog-<k>-<copy>`). `--database-url` reuses a database a previous run printed
(ingesting takes minutes); the API migrates it on start, so a database
prepared before a new migration gets it (and its back-fill) then.

    .venv/bin/python bench/api_load.py [--duration 30] [--copies 2] [--database-url URL]
        [--connections 12] [--delay-ms 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from _service_bench import FIXTURES, REPO, fresh_database, jsonl, settings_for, sib_notes

from service.ports import free_port

ALL_LANGS = ("eng_Latn", "swe_Latn", "pol_Latn", "deu_Latn", "est_Latn", "fra_Latn")


async def prepare(args: argparse.Namespace) -> tuple[str, int]:
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
    base = sib_notes(10_000, splits=("train", "dev"), langs=ALL_LANGS)
    notes = []
    for copy in range(args.copies):
        for n in base:
            notes.append(
                dict(
                    n,
                    id=f"{n['id']}-c{copy}",
                    programme=f"{n['programme']}-{copy}",
                    date=f"{2023 + copy}{n['date'][4:]}",
                )
            )
    notes += jsonl(FIXTURES / "mining_notes.jsonl")
    t = time.perf_counter()
    for i in range(0, len(notes), 512):
        await acts.ingest_notes([NoteIn.from_dict(n) for n in notes[i : i + 512]])
    print(f"ingested {len(notes)} notes in {time.perf_counter() - t:.0f}s", flush=True)
    env = ActivityEnvironment()
    t = time.perf_counter()
    prep = await env.run(acts.mining_prepare, MiningPrepareInput("load", "all", "bench", 1024))
    for off in prep.batches:
        await env.run(acts.mining_encode_batch, MiningBatchInput("load", "all", off, 1024))
    res = await env.run(acts.mining_cluster, MiningClusterInput("load", "all", 0))
    print(
        f"mined {prep.total} statements into {res.theme_count} themes in "
        f"{time.perf_counter() - t:.0f}s",
        flush=True,
    )
    await pool.close()
    return url, prep.total


def main(args: argparse.Namespace) -> None:
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk")
    if args.database_url:  # a database a previous run prepared (printed below)
        import psycopg

        url = args.database_url
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT count(*) FROM statements").fetchone()
            total = int(row[0]) if row else 0
    else:
        url, total = asyncio.run(prepare(args))
        print(f"database: {url} (pass --database-url to reuse it)", flush=True)
    from peerlearn.keys import create_key

    _, token = create_key(url, "admin", name="load")
    port = free_port()
    env = dict(
        os.environ,
        DATABASE_URL=url,
        PEERLEARN_LOG_LEVEL="WARNING",
        TEMPORAL_ADDRESS="127.0.0.1:1",
        PEERLEARN_RATE_LIMIT_PER_MINUTE="1000000",
    )
    model = settings_for(url).resolved_model_dir
    env["PEERLEARN_MODEL_DIR"] = str(model)
    api = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.main:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=REPO,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    queries = [q["query"] for q in jsonl(FIXTURES / "search_queries.jsonl")]
    try:
        hdr = {"Authorization": f"Bearer {token}"}
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(urllib.request.Request(base + "/v1/themes", headers=hdr))
                break
            except Exception:
                if time.time() > deadline or api.poll() is not None:
                    raise
                time.sleep(0.5)
        for q in queries:  # warm the model and the query LRU
            urllib.request.urlopen(
                urllib.request.Request(base + "/v1/search?q=" + urllib.parse.quote(q), headers=hdr)
            ).read()
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as fh:
            fh.write("\n".join(queries))
            qfile = fh.name
        print(
            f"statements: {total}; wrk -t2 -c{args.connections}, {args.delay_ms} ms pacing"
            f" per connection, {args.duration}s per mode",
            flush=True,
        )
        for mode in ("themes", "search", "mixed"):
            out = subprocess.run(
                [
                    "wrk",
                    "-t2",
                    f"-c{args.connections}",
                    f"-d{args.duration}s",
                    "--timeout",
                    "5s",
                    "-s",
                    str(REPO / "bench" / "api_load.lua"),
                    base,
                ],
                env=dict(
                    os.environ,
                    PL_TOKEN=token,
                    PL_MODE=mode,
                    PL_DELAY_MS=str(args.delay_ms),
                    PL_QUERIES=qfile,
                ),
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            line = next((x for x in out.splitlines() if x.startswith("RESULT")), out)
            print(re.sub(r"^RESULT ", "", line), flush=True)
    finally:
        api.terminate()
        api.wait(10)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=30)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--database-url", help="reuse an already ingested and mined database")
    ap.add_argument("--connections", type=int, default=12, help="wrk connections")
    ap.add_argument("--delay-ms", type=int, default=200, help="pause before each request")
    main(ap.parse_args())
    os._exit(0)
