"""Start N peer-learning cycles over the HTTP API and measure the engine.

Against a running stack (``make run``, or the API + a worker by hand)::

    .venv/bin/python bench/cycles.py http://127.0.0.1:8000 --api-key $KEY -n 200 -c 16

Creates one programme, then starts N cycles (concurrency C) whose schedules are
compressed to seconds (kickoff + three site visits, notes due after 2 s, one
reminder, follow-up 1 s), so every cycle runs to completion. Prints start
latency p50/p95/p99, starts/s, cycles/s sustained to completion, and the
workflow history length per cycle (from the status query, ``history_length``
of the last run, and the number of domain events).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

PARTNERS = [
    {"id": "p1", "name": "Partner 1", "country": "SE", "kind": "cluster"},
    {"id": "p2", "name": "Partner 2", "country": "PL", "kind": "city"},
    {"id": "p3", "name": "Partner 3", "country": "EE", "kind": "agency"},
]
SECOND = 1 / 86400  # policies are in days


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def cycle_body(programme_id: str, lead: float) -> dict[str, Any]:
    t0 = datetime.now(UTC) + timedelta(seconds=lead)
    meetings = [
        {
            "meeting_id": "kickoff",
            "kind": "kickoff",
            "format": "online",
            "starts_at": t0.isoformat(),
            "duration_minutes": 0.01,
        }
    ]
    for i in range(1, 4):
        meetings.append(
            {
                "meeting_id": f"visit-{i}",
                "kind": "site_visit",
                "host": f"p{i}",
                "starts_at": (t0 + timedelta(seconds=2 * i)).isoformat(),
                "duration_minutes": 0.01,
            }
        )
    return {
        "programme_id": programme_id,
        "title": "bench",
        "meetings": meetings,
        "policies": {
            "notes_due_after_days": 2 * SECOND,
            "reminder_offsets_days": [1 * SECOND],
            "prep_pack_lead_days": 1 * SECOND,
            "self_assessment_lead_days": 1 * SECOND,
            "follow_up_after_days": 1 * SECOND,
        },
    }


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("base_url", nargs="?", default="http://127.0.0.1:8000")
    ap.add_argument("--api-key", default=None, help="Bearer key with the manager or admin role")
    ap.add_argument("-n", type=int, default=100, help="cycles to start")
    ap.add_argument("-c", "--concurrency", type=int, default=8)
    ap.add_argument("--lead", type=float, default=5.0, help="seconds from start to the kickoff")
    ap.add_argument("--timeout", type=float, default=600.0, help="give up waiting for completion")
    args = ap.parse_args()
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    async with httpx.AsyncClient(base_url=args.base_url, headers=headers, timeout=60) as http:
        pid = "bench-" + uuid.uuid4().hex[:6]
        r = await http.post(
            "/v1/programmes",
            json={
                "id": pid,
                "name": "bench",
                "time_zone": "Europe/Stockholm",
                "partners": PARTNERS,
            },
        )
        r.raise_for_status()
        sem = asyncio.Semaphore(args.concurrency)
        latencies: list[float] = []
        ids: list[str] = []

        async def start() -> None:
            async with sem:
                t = time.perf_counter()
                resp = await http.post("/v1/cycles", json=cycle_body(pid, args.lead))
                latencies.append(time.perf_counter() - t)
                resp.raise_for_status()
                ids.append(resp.json()["cycle_id"])

        t_start = time.perf_counter()
        await asyncio.gather(*(start() for _ in range(args.n)))
        start_wall = time.perf_counter() - t_start
        print(
            f"started {len(ids)} cycles in {start_wall:.2f}s ({len(ids) / start_wall:.1f} starts/s)"
        )
        ms = [x * 1000 for x in latencies]
        print(
            f"start latency ms: p50 {pct(ms, 50):.1f}  p95 {pct(ms, 95):.1f}  p99 {pct(ms, 99):.1f}"
            f"  mean {statistics.mean(ms):.1f}"
        )

        deadline = time.perf_counter() + args.timeout
        done_at: dict[str, float] = {}
        while len(done_at) < len(ids) and time.perf_counter() < deadline:
            page = await http.get(
                "/v1/cycles", params={"programme_id": pid, "status": "completed", "limit": 1000}
            )
            for c in page.json()["items"]:
                done_at.setdefault(c["id"], time.perf_counter())
            await asyncio.sleep(0.5)
        total = time.perf_counter() - t_start
        print(
            f"completed {len(done_at)}/{len(ids)} cycles in {total:.1f}s from the first start"
            f" ({len(done_at) / total:.2f} cycles/s sustained,"
            f" each ~{args.lead + 12:.0f}s of schedule)"
        )

        sample = ids[: min(20, len(ids))]
        hist, events = [], []
        for cid in sample:
            st = (await http.get(f"/v1/cycles/{cid}")).json()
            if st.get("history_length"):
                hist.append(st["history_length"])
            events.append(st["events"])
        if hist:
            print(
                f"workflow history length per cycle (last run, {len(hist)} sampled):"
                f" mean {statistics.mean(hist):.0f}, max {max(hist)}"
            )
        print(f"domain events per cycle: mean {statistics.mean(events):.0f}")
    return 0 if len(done_at) == len(ids) else 1


if __name__ == "__main__":
    code = asyncio.run(main())
    sys.stdout.flush()
    import os

    os._exit(code)
