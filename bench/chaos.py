"""Chaos run: cycles on compressed schedules while components die by kill -9.

    .venv/bin/python bench/chaos.py            # 50 cycles, every component killed >= 3 times
    .venv/bin/python bench/chaos.py --quick    # 10 cycles, each component killed twice
    .venv/bin/python bench/chaos.py --quick --cycles 4 --kills 1 --stops 4   # short

Starts the real embedded stack (``peerlearn run``: PostgreSQL, Temporal dev
server, one worker, the API) in a scratch home, a local webhook receiver that
verifies signatures and deduplicates by ``Idempotency-Key``, registers a
programme, starts the cycles (meetings minutes apart, notes due minutes
after), submits notes (retrying with the same idempotency key until a 2xx),
and meanwhile SIGKILLs the worker, the API, the Temporal server and
PostgreSQL at random moments, and stops the worker gracefully (SIGTERM,
``--stops`` times); the supervisor restarts them. Each cycle also receives
a poison note (a NUL byte in its text), which must be refused (4xx) or, if
acknowledged, end rejected without holding the cycle. At the end it checks,
straight in the database:

- every cycle completed;
- every event stream gap-free (versions 1..n) with no duplicate event;
- every note acknowledged with a 2xx stored exactly once, and mined: it has
  its statements (or was mined to none), none left behind, none duplicated;
- every outbox entry delivered, and received (deduplicated by key) once.

All traffic stays on 127.0.0.1; every loop is bounded by a deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.stack import Stack, new_stack  # noqa: E402
from peerlearn import keys, signing  # noqa: E402

PROGRAMME = "chaos"
PARTNERS = ["org-a", "org-b", "org-c"]
COMPONENTS = ["worker", "api", "temporal", "postgres"]
NOTE_TEXTS = [
    ("en", "Matchmaking sessions worked well. Share the agenda a week ahead next time."),
    ("sv", "Studiebesöket gav konkreta idéer. Vi borde dokumentera metoden bättre."),
    ("pl", "Wizyta była bardzo przydatna. Warto przygotować pytania wcześniej."),
]


# --- webhook receiver ----------------------------------------------------------------


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.secret = ""
        self.lock = threading.Lock()
        self.by_key: Counter[str] = Counter()
        self.bad_signatures = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            signing.verify(self.server.secret, body, self.headers.get(signing.SIGNATURE_HEADER))
        except signing.SignatureError:
            with self.server.lock:
                self.server.bad_signatures += 1
            self.send_response(401)
            self.end_headers()
            return
        key = self.headers.get("Idempotency-Key") or ""
        with self.server.lock:
            self.server.by_key[key] += (
                1  # deduplicated by key: a repeat is acknowledged, not re-applied
            )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


# --- the run -----------------------------------------------------------------------


class Chaos:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.stack: Stack = new_stack(Path(args.home) if args.home else None)
        self.receiver = Receiver()
        self.token = ""
        self.kills: Counter[str] = Counter()
        self.acked: dict[str, tuple[str, str]] = {}  # idempotency key -> (cycle, note id)
        self.note_attempts = 0
        self.poison: Counter[int] = Counter()  # HTTP status of each poison note
        self.cycles: list[str] = []
        self.stop_chaos = threading.Event()
        self.log: list[str] = []

    def say(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        self.log.append(line)
        print(line, flush=True)

    # schedule, in minutes
    def cycle_body(self, cid: str, now: datetime) -> dict[str, Any]:
        q = self.args.quick
        first = 1.5 if q else 2.0
        gap = 1.25 if q else 1.5  # minutes; meetings last one minute and may not overlap
        starts = [now + timedelta(minutes=first + i * gap) for i in range(3)]
        day = 1 / 1440  # one minute, in days
        return {
            "cycle_id": cid,
            "programme_id": PROGRAMME,
            "title": f"Chaos cycle {cid}",
            "meetings": [
                {
                    "meeting_id": "kickoff",
                    "kind": "kickoff",
                    "format": "online",
                    "starts_at": starts[0].isoformat(),
                    "duration_minutes": 1,
                },
                {
                    "meeting_id": "visit-1",
                    "kind": "site_visit",
                    "host": PARTNERS[hash(cid) % 3],
                    "starts_at": starts[1].isoformat(),
                    "duration_minutes": 1,
                },
                {
                    "meeting_id": "wrap-up",
                    "kind": "wrap_up",
                    "format": "online",
                    "starts_at": starts[2].isoformat(),
                    "duration_minutes": 1,
                },
            ],
            "policies": {
                "notes_due_after_days": (1.0 if q else 1.5) * day,
                "reminder_offsets_days": [0.5 * day],
                "prep_pack_lead_days": 0.5 * day,
                "self_assessment_lead_days": 0.75 * day,
                "follow_up_after_days": (0.5 if q else 1.0) * day,
                "min_notes_per_meeting": 1,
            },
        }

    async def post(
        self,
        http: httpx.AsyncClient,
        path: str,
        body: dict[str, Any],
        ok: tuple[int, ...],
        headers: dict[str, str] | None = None,
        retry_on: tuple[int, ...] = (),
        deadline_s: float = 600,
    ) -> httpx.Response | None:
        """POST until an answer in ``ok`` (or a final refusal), retrying through
        outages with the same body and idempotency key."""
        deadline = time.monotonic() + deadline_s
        delay = 0.3
        while time.monotonic() < deadline:
            try:
                r = await http.post(path, json=body, headers=headers)
                if r.status_code in ok:
                    return r
                if r.status_code < 500 and r.status_code not in retry_on:
                    self.say(f"POST {path}: {r.status_code} {r.text[:200]}")
                    return r
            except httpx.HTTPError:
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 3.0)
        return None

    async def run_cycle(self, http: httpx.AsyncClient, cid: str) -> None:
        body = self.cycle_body(cid, datetime.now(UTC))
        r = await self.post(http, "/v1/cycles", body, ok=(201, 409))
        if r is None or r.status_code not in (201, 409):
            self.say(f"cycle {cid} did not start")
            return
        self.cycles.append(cid)
        # notes for the kickoff and the visit, once each meeting has been held
        for m in body["meetings"][:2]:
            held_at = datetime.fromisoformat(m["starts_at"]) + timedelta(seconds=5)
            await asyncio.sleep(max(0.0, (held_at - datetime.now(UTC)).total_seconds()))
            for i, org in enumerate(PARTNERS[:2]):
                lang, text = NOTE_TEXTS[(i + len(cid)) % 3]
                key = f"{cid}:{m['meeting_id']}:{org}"
                note = {"author_organisation": org, "language": lang, "text": text}
                self.note_attempts += 1
                r = await self.post(
                    http,
                    f"/v1/cycles/{cid}/meetings/{m['meeting_id']}/notes",
                    note,
                    ok=(200, 201),
                    headers={"Idempotency-Key": key},
                    retry_on=(409,),
                    deadline_s=120,
                )
                if r is not None and r.status_code in (200, 201):
                    self.acked[key] = (cid, r.json()["note_id"])
            if m["meeting_id"] == "visit-1":
                await self.send_poison(http, cid, m["meeting_id"])

    async def send_poison(self, http: httpx.AsyncClient, cid: str, meeting: str) -> None:
        """A note the storage can never hold (NUL byte): refused, or acknowledged
        and then rejected for good; either way the cycle must finish."""
        key = f"{cid}:{meeting}:poison"
        r = await self.post(
            http,
            f"/v1/cycles/{cid}/meetings/{meeting}/notes",
            {"author_organisation": PARTNERS[2], "language": "en", "text": "poison\u0000note"},
            ok=(200, 201),
            headers={"Idempotency-Key": key},
            deadline_s=120,
        )
        status = r.status_code if r is not None else 0
        self.poison[status] += 1
        if r is not None and r.status_code in (200, 201):
            self.acked[key] = (cid, r.json()["note_id"])

    def chaos_loop(self, duration: float) -> None:
        """Kill each component ``kills`` times at random moments within ``duration``."""
        plan = [c for c in COMPONENTS for _ in range(self.args.kills)]
        self.rng.shuffle(plan)
        # graceful stops fall while notes arrive and are mined (the first
        # meeting is held 1.5-2 minutes after the cycles start)
        timed = [(self.rng.uniform(20, duration), v) for v in plan]
        timed += [(self.rng.uniform(100, duration), "worker-stop") for _ in range(self.args.stops)]
        t0 = time.monotonic()
        for at, victim in sorted(timed):
            if self.stop_chaos.wait(max(0.0, at - (time.monotonic() - t0))):
                return
            graceful = victim == "worker-stop"
            victim = "worker" if graceful else victim
            pid = self.stack.pid(victim)
            if not pid:
                self.say(f"no pid for {victim}; skipped")
                continue
            try:
                os.kill(pid, signal.SIGTERM if graceful else signal.SIGKILL)
            except ProcessLookupError:
                continue
            self.kills["worker-stop" if graceful else victim] += 1
            self.say(f"{'SIGTERM' if graceful else 'kill -9'} {victim} (pid {pid})")
            # let the supervisor notice and restart it before the next blow
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and not self.stop_chaos.is_set():
                new = self.stack.pid(victim)
                if new and new != pid and self.stack.healthy():
                    break
                time.sleep(0.5)

    async def main(self) -> int:
        threading.Thread(target=self.receiver.serve_forever, daemon=True).start()
        self.say(f"starting the stack in {self.stack.home}")
        self.stack.start()
        conninfo = self.stack.database_url()
        _, self.token = keys.create_key(conninfo, "admin", name="chaos")
        self.receiver.secret = keys.programme_secret(conninfo, PROGRAMME)
        n = self.args.cycles
        async with httpx.AsyncClient(
            base_url=self.stack.api_url,
            timeout=30,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as http:
            prog = {
                "id": PROGRAMME,
                "name": "Chaos programme",
                "time_zone": "Europe/Warsaw",
                "languages": ["en", "sv", "pl"],
                "webhook_url": self.receiver.url,
                "partners": [{"id": p, "name": p.upper(), "country": "SE"} for p in PARTNERS],
            }
            r = await self.post(http, "/v1/programmes", prog, ok=(201, 409))
            assert r is not None and r.status_code in (201, 409), r
            chaos_for = 240 if self.args.quick else 540
            chaos = threading.Thread(target=self.chaos_loop, args=(chaos_for,), daemon=True)
            chaos.start()
            tasks = []
            spread = 30 if self.args.quick else 90  # seconds over which cycles start
            for i in range(n):
                tasks.append(
                    asyncio.create_task(self.run_cycle(http, f"chaos-{self.args.seed}-{i:03d}"))
                )
                await asyncio.sleep(spread / n)
            await asyncio.gather(*tasks)
            self.say(f"{len(self.cycles)} cycles started, {len(self.acked)} notes acknowledged")
            chaos.join(chaos_for + 200)
            self.stop_chaos.set()
        return await asyncio.to_thread(self.verify, conninfo)

    def wait_mined(self, conn: psycopg.Connection[Any], note_ids: list[str]) -> int:
        """How many of ``note_ids`` were mined (they have statements, or a
        recorded count of zero), waiting up to four minutes for the cycles'
        retries and the reconciliation schedule to catch up."""
        deadline = time.monotonic() + 240
        while True:
            row = conn.execute(
                "SELECT count(*) FROM notes n WHERE n.id = ANY(%s) AND (n.statement_count"
                " IS NOT NULL OR EXISTS (SELECT 1 FROM statements s WHERE s.note_id = n.id))",
                (note_ids,),
            ).fetchone()
            mined = int(row[0]) if row else 0
            if mined == len(note_ids) or time.monotonic() > deadline:
                return mined
            conn.commit()
            time.sleep(5)

    def verify(self, conninfo: str) -> int:
        self.say("chaos over; waiting for every cycle to complete")
        self.stack.wait_healthy(180)
        deadline = time.monotonic() + (420 if self.args.quick else 900)
        while time.monotonic() < deadline:
            with psycopg.connect(conninfo, connect_timeout=5) as conn:
                statuses: dict[str, str] = dict(
                    conn.execute(
                        "SELECT id, status FROM cycles WHERE id = ANY(%s)", (self.cycles,)
                    ).fetchall()
                )
            done = sum(1 for s in statuses.values() if s == "completed")
            if done == len(self.cycles):
                break
            time.sleep(5)
        # let the last outbox deliveries land
        time.sleep(10)
        with psycopg.connect(conninfo) as conn:
            statuses = dict(
                conn.execute(
                    "SELECT id, status FROM cycles WHERE id = ANY(%s)", (self.cycles,)
                ).fetchall()
            )
            streams = conn.execute(
                "SELECT stream_id, count(*), count(DISTINCT version), min(version), max(version)"
                " FROM events WHERE stream_id = ANY(%s) GROUP BY stream_id",
                (self.cycles,),
            ).fetchall()
            dup_row = conn.execute(
                "SELECT count(*) FROM (SELECT stream_id, type, payload FROM events"
                " WHERE stream_id = ANY(%s) GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
                (self.cycles,),
            ).fetchone()
            dup_events = int(dup_row[0]) if dup_row else -1
            note_rows = Counter(
                f"{c}|{k}"
                for c, k in conn.execute(
                    "SELECT cycle_id, client_key FROM notes WHERE cycle_id = ANY(%s)",
                    (self.cycles,),
                ).fetchall()
            )
            acked_ids = [nid for _, nid in self.acked.values()]
            mined = self.wait_mined(conn, acked_ids)
            dup_statements_row = conn.execute(
                "SELECT count(*) - count(DISTINCT (note_id, position)) FROM statements"
                " WHERE note_id = ANY(%s)",
                (acked_ids,),
            ).fetchone()
            rejected_row = conn.execute(
                "SELECT count(*) FROM events WHERE stream_id = ANY(%s) AND type = 'NoteRejected'",
                (self.cycles,),
            ).fetchone()
            outbox = conn.execute(
                "SELECT o.id, d.delivered_at IS NOT NULL, coalesce(d.attempts, 0) FROM outbox o"
                " LEFT JOIN outbox_deliveries d ON d.outbox_id = o.id WHERE o.cycle_id = ANY(%s)",
                (self.cycles,),
            ).fetchall()
        completed = sum(1 for s in statuses.values() if s == "completed")
        gap_free = sum(1 for _, n, nd, lo, hi in streams if n == nd and lo == 1 and hi == n)
        acked_once = sum(
            1 for key, (cid, _) in self.acked.items() if note_rows.get(f"{cid}|{key}") == 1
        )
        delivered = sum(1 for _, ok, _ in outbox if ok)
        received_keys = self.receiver.by_key
        received_once = sum(1 for oid, _, _ in outbox if received_keys.get(oid, 0) >= 1)
        redelivered = sum(1 for oid, _, _ in outbox if received_keys.get(oid, 0) > 1)
        result = {
            "cycles": len(self.cycles),
            "cycles_completed": completed,
            "event_streams": len(streams),
            "event_streams_gap_free": gap_free,
            "duplicate_events": dup_events,
            "notes_acked_2xx": len(self.acked),
            "notes_acked_stored_exactly_once": acked_once,
            "note_submissions": self.note_attempts,
            "notes_acked_mined": mined,
            "notes_acked_not_mined": len(acked_ids) - mined,
            "duplicate_statements": int(dup_statements_row[0]) if dup_statements_row else -1,
            "notes_rejected_events": int(rejected_row[0]) if rejected_row else -1,
            "poison_notes_by_status": {str(k): v for k, v in sorted(self.poison.items())},
            "outbox_entries": len(outbox),
            "outbox_delivered": delivered,
            "outbox_received_after_dedup": received_once,
            "outbox_redelivered_then_deduplicated": redelivered,
            "bad_signatures": self.receiver.bad_signatures,
            "kills": dict(self.kills),
        }
        print(json.dumps(result, indent=2))
        ok = (
            completed == len(self.cycles) >= self.args.cycles
            and gap_free == len(streams) == len(self.cycles)
            and dup_events == 0
            and acked_once == len(self.acked)
            and mined == len(self.acked)
            and result["duplicate_statements"] == 0
            and all(400 <= k < 500 for k in self.poison)
            and delivered == len(outbox) == received_once
            and self.receiver.bad_signatures == 0
            and all(self.kills[c] >= min(2, self.args.kills) for c in COMPONENTS)
            and self.kills["worker-stop"] >= self.args.stops
        )
        print("CHAOS", "PASSED" if ok else "FAILED")
        if self.args.out:
            Path(self.args.out).write_text(
                json.dumps({**result, "passed": ok, "log": self.log}, indent=2)
            )
        return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="10 cycles, 2 kills each, about 8 minutes")
    ap.add_argument("--cycles", type=int, default=None, help="default 50 (10 with --quick)")
    ap.add_argument(
        "--kills", type=int, default=None, help="kills per component (default 3; 2 quick)"
    )
    ap.add_argument("--stops", type=int, default=None, help="graceful worker stops (default 3)")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 10_000)
    ap.add_argument("--home", help="state folder (default: a scratch folder under .peerlearn/)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    args.cycles = args.cycles or (10 if args.quick else 50)
    args.kills = args.kills or (2 if args.quick else 3)
    args.stops = 3 if args.stops is None else args.stops
    chaos = Chaos(args)
    try:
        code = asyncio.run(chaos.main())
    finally:
        chaos.stop_chaos.set()
        chaos.stack.stop()
        chaos.receiver.shutdown()
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
