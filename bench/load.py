"""Load: 200 cycles at once on the embedded stack with one worker, plus analyst
reads at 50 requests/s, all on loopback.

    .venv/bin/python bench/load.py                 # 200 cycles, 50 rps of reads for 120 s
    .venv/bin/python bench/load.py --quick         # 40 cycles, 60 s

The generator is open-loop: each request has a scheduled send time (cycle
starts spread over the ramp, reads at a fixed rate) and its latency is
measured from that time, so a stalled server shows up as latency instead of
silently lowering the offered rate (no coordinated omission). In-flight
requests are bounded; a request that cannot be sent because the bound is
reached counts as an error. Reports, per endpoint: count, error rate,
p50/p95/p99; the worker's CPU and memory and the Temporal server's memory
(psutil, sampled every second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.stack import Stack, new_stack  # noqa: E402
from peerlearn import keys  # noqa: E402

PROGRAMME = "load"
PARTNERS = ["org-a", "org-b", "org-c", "org-d"]
QUERIES = ["matchmaking between clusters", "jak przygotować wizytę", "dela erfarenheter", "funding"]


class Recorder:
    def __init__(self) -> None:
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, name: str, seconds: float, status: int | None, ok: bool) -> None:
        self.lat[name].append(seconds)
        self.statuses[name][status or 0] += 1
        if not ok:
            self.errors[name] += 1

    def table(self) -> list[dict[str, Any]]:
        rows = []
        for name in sorted(self.lat):
            xs = sorted(self.lat[name])
            q = statistics.quantiles(xs, n=100, method="inclusive") if len(xs) > 1 else xs * 99
            rows.append(
                {
                    "endpoint": name,
                    "count": len(xs),
                    "error_rate": round(self.errors[name] / len(xs), 4),
                    "p50_ms": round(q[49] * 1000, 1),
                    "p95_ms": round(q[94] * 1000, 1),
                    "p99_ms": round(q[98] * 1000, 1),
                    "statuses": dict(self.statuses[name]),
                }
            )
        return rows


class Sampler(threading.Thread):
    """CPU and RSS of the worker and the Temporal server, once a second."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.stop = threading.Event()
        self.samples: dict[str, list[tuple[float, float]]] = defaultdict(list)  # cpu %, rss MB

    def _proc(self, name: str) -> psutil.Process | None:
        pid = self.stack.pid(name)
        try:
            return psutil.Process(pid) if pid else None
        except psutil.NoSuchProcess:
            return None

    def run(self) -> None:
        procs = {n: self._proc(n) for n in ("worker", "temporal", "api")}
        for p in procs.values():
            if p:
                p.cpu_percent(None)
        while not self.stop.wait(1.0):
            for name, p in procs.items():
                if p is None:
                    continue
                try:
                    tree = [p, *p.children(recursive=True)]
                    cpu = sum(x.cpu_percent(None) for x in tree)
                    rss = sum(x.memory_info().rss for x in tree) / 2**20
                except psutil.Error:
                    continue
                self.samples[name].append((cpu, rss))

    def summary(self) -> dict[str, Any]:
        out = {}
        for name, xs in self.samples.items():
            cpus = [c for c, _ in xs[1:]] or [0.0]
            rss = [m for _, m in xs] or [0.0]
            out[name] = {
                "cpu_mean_pct": round(statistics.fmean(cpus), 1),
                "cpu_max_pct": round(max(cpus), 1),
                "rss_mean_mb": round(statistics.fmean(rss), 1),
                "rss_max_mb": round(max(rss), 1),
            }
        return out


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stack = new_stack(Path(args.home) if args.home else None)
        self.rec = Recorder()
        self.sem = asyncio.Semaphore(args.max_in_flight)
        self.rng = random.Random(1)
        self.cycles: list[str] = []

    async def timed(
        self,
        http: httpx.AsyncClient,
        name: str,
        method: str,
        url: str,
        scheduled: float,
        ok: tuple[int, ...] = (200, 201, 202),
        **kw: Any,
    ) -> httpx.Response | None:
        if self.sem.locked():
            self.rec.add(
                name, time.monotonic() - scheduled, None, False
            )  # over the in-flight bound
            return None
        async with self.sem:
            try:
                r = await http.request(method, url, **kw)
            except httpx.HTTPError:
                self.rec.add(name, time.monotonic() - scheduled, None, False)
                return None
        self.rec.add(name, time.monotonic() - scheduled, r.status_code, r.status_code in ok)
        return r

    def cycle_body(self, cid: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        day = 1 / 1440
        # meetings a few minutes out, so every cycle is live (timers armed) during the run
        first = self.args.duration / 60 + 2
        return {
            "cycle_id": cid,
            "programme_id": PROGRAMME,
            "title": f"Load {cid}",
            "meetings": [
                {
                    "meeting_id": "kickoff",
                    "kind": "kickoff",
                    "format": "online",
                    "starts_at": (now + timedelta(minutes=first)).isoformat(),
                    "duration_minutes": 30,
                },
                {
                    "meeting_id": "visit-1",
                    "kind": "site_visit",
                    "host": self.rng.choice(PARTNERS),
                    "starts_at": (now + timedelta(minutes=first + 60)).isoformat(),
                    "duration_minutes": 60,
                },
            ],
            "policies": {
                "notes_due_after_days": 60 * day,
                "reminder_offsets_days": [30 * day],
                "prep_pack_lead_days": 1 * day,
                "self_assessment_lead_days": 2 * day,
                "follow_up_after_days": 60 * day,
            },
        }

    async def cycles_traffic(self, http: httpx.AsyncClient, t0: float) -> None:
        n, ramp = self.args.cycles, self.args.ramp
        tasks = []
        for i in range(n):
            at = t0 + ramp * i / n
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            cid = f"load-{self.args.tag}-{i:04d}"
            self.cycles.append(cid)
            tasks.append(
                asyncio.create_task(
                    self.timed(
                        http,
                        "POST /v1/cycles",
                        "POST",
                        "/v1/cycles",
                        at,
                        ok=(201,),
                        json=self.cycle_body(cid),
                    )
                )
            )
        await asyncio.gather(*tasks)
        # then manager status polls on the live cycles, 10/s, until the end
        end = t0 + ramp + self.args.duration
        i = 0
        polls = []
        while time.monotonic() < end:
            at = t0 + ramp + i / 10
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            cid = self.cycles[i % len(self.cycles)]
            polls.append(
                asyncio.create_task(
                    self.timed(http, "GET /v1/cycles/{id}", "GET", f"/v1/cycles/{cid}", at)
                )
            )
            i += 1
        await asyncio.gather(*polls)

    async def analyst_traffic(self, http: httpx.AsyncClient, t0: float) -> None:
        rate, end = self.args.rps, t0 + self.args.ramp + self.args.duration
        mix = [
            ("GET /v1/themes", lambda: "/v1/themes?limit=20"),
            ("GET /v1/practices", lambda: "/v1/practices?limit=20"),
            ("GET /v1/search", lambda: f"/v1/search?q={self.rng.choice(QUERIES)}&limit=10"),
            ("GET /v1/cycles", lambda: "/v1/cycles?limit=50"),
        ]
        tasks = []
        i = 0
        while True:
            at = t0 + i / rate
            if at > end:
                break
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            name, url = mix[i % len(mix)]
            tasks.append(asyncio.create_task(self.timed(http, name, "GET", url(), at)))
            i += 1
        await asyncio.gather(*tasks)

    async def main(self) -> dict[str, Any]:
        print(f"starting the stack in {self.stack.home}", flush=True)
        self.stack.start()
        conninfo = self.stack.database_url()
        _, admin = keys.create_key(conninfo, "admin", name="load-admin")
        limits = httpx.Limits(
            max_connections=self.args.max_in_flight, max_keepalive_connections=100
        )
        async with httpx.AsyncClient(
            base_url=self.stack.api_url,
            timeout=30,
            limits=limits,
            headers={"Authorization": f"Bearer {admin}"},
        ) as http:
            prog = {
                "id": PROGRAMME,
                "name": "Load programme",
                "time_zone": "Europe/Berlin",
                "languages": ["en", "sv", "pl"],
                "partners": [{"id": p, "name": p.upper(), "country": "DE"} for p in PARTNERS],
            }
            r = await http.post("/v1/programmes", json=prog)
            assert r.status_code in (201, 409), r.text
            _, analyst = keys.create_key(conninfo, "analyst", [PROGRAMME], name="load-analyst")
            async with httpx.AsyncClient(
                base_url=self.stack.api_url,
                timeout=30,
                limits=limits,
                headers={"Authorization": f"Bearer {analyst}"},
            ) as ahttp:
                # warm the search model once, outside the measurement
                await ahttp.get("/v1/search", params={"q": "warm up"}, timeout=120)
                sampler = Sampler(self.stack)
                sampler.start()
                t0 = time.monotonic() + 0.5
                await asyncio.gather(self.cycles_traffic(http, t0), self.analyst_traffic(ahttp, t0))
                sampler.stop.set()
                elapsed = time.monotonic() - t0
            running = 0
            for cid in self.cycles:
                try:
                    s = await http.get(f"/v1/cycles/{cid}")
                    running += s.status_code == 200 and s.json().get("status") not in (
                        "completed",
                        "cancelled",
                    )
                except httpx.HTTPError:
                    pass
        table = self.rec.table()
        total = sum(r["count"] for r in table)
        errors = sum(round(r["error_rate"] * r["count"]) for r in table)
        return {
            "cycles_started": len(self.cycles),
            "cycles_running_at_end": running,
            "seconds": round(elapsed, 1),
            "requests": total,
            "error_rate": round(errors / max(total, 1), 4),
            "endpoints": table,
            "processes": sampler.summary(),
        }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="40 cycles, 60 s of reads")
    ap.add_argument("--cycles", type=int, default=None)
    ap.add_argument("--rps", type=float, default=50.0, help="analyst reads per second")
    ap.add_argument("--duration", type=float, default=None, help="seconds of reads after the ramp")
    ap.add_argument("--ramp", type=float, default=20.0, help="seconds over which cycles start")
    ap.add_argument("--max-in-flight", type=int, default=256)
    ap.add_argument("--home")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    args.cycles = args.cycles or (40 if args.quick else 200)
    args.duration = args.duration or (60.0 if args.quick else 120.0)
    args.tag = os.urandom(3).hex()
    load = Load(args)
    try:
        result = asyncio.run(load.main())
    finally:
        load.stack.stop()
    print(json.dumps(result, indent=2))
    print(f"\n{'endpoint':28} {'n':>6} {'err%':>6} {'p50':>8} {'p95':>8} {'p99':>8}")
    for r in result["endpoints"]:
        print(
            f"{r['endpoint']:28} {r['count']:6d} {100 * r['error_rate']:6.2f}"
            f" {r['p50_ms']:8.1f} {r['p95_ms']:8.1f} {r['p99_ms']:8.1f}"
        )
    for name, p in result["processes"].items():
        print(
            f"{name:10} cpu mean {p['cpu_mean_pct']}% max {p['cpu_max_pct']}%,"
            f" rss mean {p['rss_mean_mb']} MB max {p['rss_max_mb']} MB"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
