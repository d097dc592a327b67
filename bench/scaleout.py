"""Scale-out on one machine: several ``peerlearn worker`` processes, one Temporal server.

    .venv/bin/python bench/scaleout.py                   # 1 supervised + 2 extra workers
    .venv/bin/python bench/scaleout.py --extra-workers 1 --statements 400

What it shows, with real processes:

1. **A mining run is shared.** The embedded stack (``bench/stack.py``: PostgreSQL,
   Temporal dev server, one supervised worker, the API) plus ``--extra-workers``
   more ``peerlearn worker`` processes on the same task queue, each with its own
   identity (``peerlearn-worker-<pid>@<host>``). SIB-200 sentences are ingested
   through the service code path (``MiningActivities.ingest_notes``), their
   cached embeddings are dropped so the re-mine really encodes, and a
   ``ThemeMining`` run is started with ``POST /v1/mining-runs``. When it has
   completed, the run's workflow history is read back from Temporal and the
   ``ActivityTaskStarted`` events' ``identity`` tell which worker ran each
   ``mining_encode_batch`` (and how many statements it encoded): the split.
2. **A cycle survives losing a worker.** A cycle on a compressed schedule
   (meetings a minute apart, notes as in ``bench/chaos.py``) runs while one
   extra worker — the one holding the cycle's workflow when it is one, so the
   workflow must move — is ``kill -9``-ed after the kickoff notes. The cycle
   must complete on the others; its event stream must be gap-free with no
   duplicate event, every acknowledged note stored once, every webhook
   delivered; and the cycle's Temporal history must show no task run by the
   dead worker after its death.

Prints the figures (``--out`` writes them as JSON) and ``SCALEOUT PASSED`` or
``FAILED``; exit code 0 only when every check holds. On 2 cores it takes about
7 minutes, most of it the compressed cycle's own clock; up to 5 minutes more
when the killed worker was running a cycle activity (``assign_note_themes``
has no heartbeat, so its lost attempt waits out its start-to-close timeout).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._service_bench import settings_for, sib_notes  # noqa: E402
from bench.chaos import PARTNERS, PROGRAMME, Chaos  # noqa: E402
from bench.stack import REPO  # noqa: E402
from peerlearn import keys  # noqa: E402
from peerlearn.settings import Settings  # noqa: E402

LANGS = ("eng_Latn", "swe_Latn", "pol_Latn", "deu_Latn")


class ScaleOut(Chaos):
    """Reuses the chaos run's stack, webhook receiver, note submission and POST retry;
    only the schedule, the workers and the checks differ."""

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.extra: dict[str, subprocess.Popen[bytes]] = {}  # label -> process
        self.labels: dict[str, str] = {}  # worker identity -> label
        self.figures: dict[str, Any] = {}
        self.client: Any = None

    # -- a shorter cycle than chaos.py's: about 4 minutes end to end ------------------

    def cycle_body(self, cid: str, now: datetime) -> dict[str, Any]:
        body = super().cycle_body(cid, now)
        minute = 1 / 1440  # in days
        for i, m in enumerate(body["meetings"]):
            m["starts_at"] = (now + timedelta(seconds=60 + 45 * i)).isoformat()
            m["duration_minutes"] = 0.5
        body["policies"].update(
            notes_due_after_days=1.0 * minute,
            reminder_offsets_days=[0.5 * minute],
            prep_pack_lead_days=0.25 * minute,
            self_assessment_lead_days=0.4 * minute,
            follow_up_after_days=0.5 * minute,
        )
        return body

    # -- workers ----------------------------------------------------------------------

    def worker_env(self) -> dict[str, str]:
        env = dict(self.stack.env)
        env.update(
            DATABASE_URL=self.stack.database_url(),
            TEMPORAL_ADDRESS=f"127.0.0.1:{self.stack.temporal_port}",
            PYTHONUNBUFFERED="1",
        )
        return env

    def start_extra_workers(self) -> None:
        env = self.worker_env()
        logs = self.stack.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for i in range(1, self.args.extra_workers + 1):
            label = f"extra-{i}"
            with open(logs / f"worker-{label}.log", "ab") as log:
                self.extra[label] = subprocess.Popen(
                    [sys.executable, "-m", "service.cli", "worker"],
                    env=env,
                    cwd=REPO,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

    def stop_extra_workers(self) -> None:
        for p in self.extra.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.extra.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def label(self, identity: str) -> str:
        if identity in self.labels:
            return self.labels[identity]
        pid = identity.removeprefix("peerlearn-worker-").split("@", 1)[0]
        sup = self.stack.pid("worker")
        if sup is not None and pid == str(sup):
            return "supervised"
        for label, p in self.extra.items():
            if pid == str(p.pid):
                return label
        return f"other({identity})"

    async def pollers(self) -> set[str]:
        from temporalio.api.enums.v1 import TaskQueueType
        from temporalio.api.taskqueue.v1 import TaskQueue
        from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

        settings = Settings()
        resp = await self.client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=self.client.namespace,
                task_queue=TaskQueue(name=settings.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            )
        )
        return {p.identity for p in resp.pollers}

    async def wait_for_pollers(self, within_s: float = 240) -> None:
        """Every worker (supervised + extra) polls the activity queue, named by identity."""
        want = 1 + len(self.extra)
        deadline = time.monotonic() + within_s
        seen: set[str] = set()
        while time.monotonic() < deadline:
            for label, p in self.extra.items():
                if p.poll() is not None:
                    raise RuntimeError(f"worker {label} exited with {p.returncode}")
            seen = await self.pollers()
            labels = {self.label(i) for i in seen}
            if len({x for x in labels if not x.startswith("other")}) >= want:
                self.labels.update({i: self.label(i) for i in seen})
                return
            await asyncio.sleep(1)
        raise RuntimeError(f"only {sorted(seen)} poll the queue after {within_s:.0f}s")

    # -- part 1: a mining run shared by the workers --------------------------------------

    async def ingest(self, url: str) -> int:
        """SIB-200 sentences through the service path, then a cold embedding cache."""
        from activities.mining import MiningActivities
        from nlp.types import NoteIn
        from peerlearn import db
        from peerlearn.mining import miner as miners

        per_language = max(1, self.args.statements // len(LANGS))
        notes = sib_notes(per_language, langs=LANGS, programmes=1)
        for n in notes:
            n["programme"] = PROGRAMME  # the chaos programme registered below
        settings = settings_for(url)
        pool = await db.open_pool(url)
        try:
            await miners.get_miner_async(settings)
            acts = MiningActivities(pool, settings)
            count = 0
            for i in range(0, len(notes), 256):
                batch = [NoteIn.from_dict(n) for n in notes[i : i + 256]]
                count += sum(o.statement_count for o in await acts.ingest_notes(batch))
        finally:
            await pool.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM embeddings")  # so every encode batch does real work
        return count

    async def mining(self, http: httpx.AsyncClient, url: str) -> dict[str, Any]:
        from temporalio.api.enums.v1 import EventType

        from workflows.mining import MINING_ENCODE_BATCH, MiningBatchOutput, workflow_id_for_run

        t = time.perf_counter()
        statements = await self.ingest(url)
        self.say(f"ingested {statements} statements in {time.perf_counter() - t:.0f}s")
        t = time.perf_counter()
        r = await http.post(
            "/v1/mining-runs", json={"scope": "all", "batch_size": self.args.batch_size}
        )
        assert r.status_code == 202, r.text
        run = r.json()
        st: dict[str, Any] = {}
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            st = (await http.get(f"/v1/mining-runs/{run['id']}")).json()
            if st["status"] != "running":
                break
            await asyncio.sleep(1)
        wall = time.perf_counter() - t
        self.say(f"mining run {run['id']}: {st.get('status')} in {wall:.1f}s")

        handle = self.client.get_workflow_handle(workflow_id_for_run(run["id"]))
        history = await handle.fetch_history()
        kind: dict[int, str] = {}
        started_by: dict[int, str] = {}
        encoded: dict[int, int] = {}
        conv = self.client.data_converter.payload_converter
        for ev in history.events:
            if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                kind[ev.event_id] = ev.activity_task_scheduled_event_attributes.activity_type.name
            elif ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                a = ev.activity_task_started_event_attributes
                started_by[a.scheduled_event_id] = a.identity
            elif ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                a = ev.activity_task_completed_event_attributes
                if kind.get(a.scheduled_event_id) == MINING_ENCODE_BATCH:
                    out = conv.from_payloads(list(a.result.payloads), [MiningBatchOutput])[0]
                    encoded[a.scheduled_event_id] = int(out.encoded)
        batches: Counter[str] = Counter()
        texts: Counter[str] = Counter()
        other: dict[str, Counter[str]] = defaultdict(Counter)
        for sid, ident in started_by.items():
            who = self.label(ident)
            if kind.get(sid) == MINING_ENCODE_BATCH:
                batches[who] += 1
                texts[who] += encoded.get(sid, 0)
            else:
                other[who][kind.get(sid, "?")] += 1
        split = {
            who: {
                "identity": next((i for i in started_by.values() if self.label(i) == who), ""),
                "encode_batches": batches[who],
                "texts_encoded": texts[who],
                "other_activities": dict(other[who]),
            }
            for who in sorted(set(batches) | set(other))
        }
        return {
            "run_id": run["id"],
            "status": st.get("status"),
            "statements": statements,
            "themes": st.get("theme_count"),
            "batch_size": self.args.batch_size,
            "encode_batches": sum(batches.values()),
            "texts_encoded": sum(texts.values()),
            "workers_sharing_encode": sum(1 for v in batches.values() if v),
            "wall_s": round(wall, 1),
            "split": split,
        }

    # -- part 2: a cycle survives losing a worker ---------------------------------------

    async def cycle_histories(self, cid: str) -> list[Any]:
        from workflows.types import workflow_id_for

        wid = workflow_id_for(cid)
        runs = [e async for e in self.client.list_workflows(f'WorkflowId = "{wid}"')]
        return [
            await self.client.get_workflow_handle(wid, run_id=e.run_id).fetch_history()
            for e in runs
        ]

    async def last_workflow_worker(self, cid: str) -> str | None:
        from temporalio.api.enums.v1 import EventType

        last: tuple[datetime, str] | None = None
        for h in await self.cycle_histories(cid):
            for ev in h.events:
                if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                    at = ev.event_time.ToDatetime(tzinfo=UTC)
                    if last is None or at > last[0]:
                        last = (at, ev.workflow_task_started_event_attributes.identity)
        return self.label(last[1]) if last else None

    async def killer(self, cid: str) -> None:
        """After the kickoff notes are stored, kill -9 the extra worker holding the cycle's
        workflow (sticky), or the first extra worker when the supervised one holds it."""
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if sum(1 for k in self.acked if k.startswith(f"{cid}:kickoff:")) >= 2:
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)
        holder = await self.last_workflow_worker(cid)
        victim = holder if holder in self.extra else sorted(self.extra)[0]
        proc = self.extra[victim]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        self.kills["worker"] += 1
        self.figures["killed"] = {
            "worker": victim,
            "pid": proc.pid,
            "held_cycle_workflow": holder == victim,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self.say(f"kill -9 {victim} (pid {proc.pid}); the cycle's workflow was on {holder}")

    async def cycle(self, http: httpx.AsyncClient, conninfo: str) -> dict[str, Any]:
        from temporalio.api.enums.v1 import EventType

        cid = f"scaleout-{self.args.seed}"
        t = time.perf_counter()
        kill = asyncio.create_task(self.killer(cid))
        await self.run_cycle(http, cid)
        await kill
        killed_at = datetime.fromisoformat(self.figures["killed"]["at"])
        deadline = time.monotonic() + 600
        status = ""
        while time.monotonic() < deadline:
            with psycopg.connect(conninfo, connect_timeout=5) as conn:
                row = conn.execute("SELECT status FROM cycles WHERE id = %s", (cid,)).fetchone()
            status = row[0] if row else ""
            if status == "completed":
                break
            await asyncio.sleep(3)
        wall = time.perf_counter() - t
        await asyncio.sleep(5)  # the last webhook deliveries
        with psycopg.connect(conninfo) as conn:
            n, nd, lo, hi = conn.execute(
                "SELECT count(*), count(DISTINCT version), min(version), max(version)"
                " FROM events WHERE stream_id = %s",
                (cid,),
            ).fetchone() or (0, 0, None, None)
            dup_row = conn.execute(
                "SELECT count(*) FROM (SELECT type, payload FROM events WHERE stream_id = %s"
                " GROUP BY 1, 2 HAVING count(*) > 1) d",
                (cid,),
            ).fetchone()
            notes = Counter(
                k
                for (k,) in conn.execute(
                    "SELECT client_key FROM notes WHERE cycle_id = %s", (cid,)
                ).fetchall()
            )
            outbox = conn.execute(
                "SELECT o.id, d.delivered_at IS NOT NULL FROM outbox o"
                " LEFT JOIN outbox_deliveries d ON d.outbox_id = o.id WHERE o.cycle_id = %s",
                (cid,),
            ).fetchall()
        before: Counter[str] = Counter()
        after: Counter[str] = Counter()
        retried = 0
        runs = await self.cycle_histories(cid)
        for h in runs:
            for ev in h.events:
                if ev.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                    ident = ev.workflow_task_started_event_attributes.identity
                elif ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                    ident = ev.activity_task_started_event_attributes.identity
                    if ev.activity_task_started_event_attributes.attempt > 1:
                        retried += 1  # an attempt lost with the worker, run again elsewhere
                else:
                    continue
                at = ev.event_time.ToDatetime(tzinfo=UTC)
                (after if at > killed_at else before)[self.label(ident)] += 1
        victim = self.figures["killed"]["worker"]
        received = self.receiver.by_key
        return {
            "cycle": cid,
            "status": status,
            "wall_s": round(wall, 1),
            "events": int(n),
            "gap_free": bool(n and n == nd and lo == 1 and hi == n),
            "duplicate_events": int(dup_row[0]) if dup_row else -1,
            "notes_acked_2xx": len(self.acked),
            "notes_acked_stored_exactly_once": sum(1 for k in self.acked if notes.get(k) == 1),
            "outbox_entries": len(outbox),
            "outbox_delivered": sum(1 for _, ok in outbox if ok),
            "outbox_received": sum(1 for oid, _ in outbox if received.get(oid, 0) >= 1),
            "temporal_runs": len(runs),
            "tasks_before_kill": dict(before),
            "tasks_after_kill": dict(after),
            "tasks_by_killed_worker_after_kill": after.get(victim, 0),
            "activity_attempts_retried": retried,
        }

    # -- the run --------------------------------------------------------------------------

    async def main(self) -> int:
        from peerlearn.temporal import connect

        threading.Thread(target=self.receiver.serve_forever, daemon=True).start()
        self.say(f"starting the stack in {self.stack.home}")
        t = time.perf_counter()
        self.stack.start()
        conninfo = self.stack.database_url()
        self.start_extra_workers()
        self.client = await connect(
            Settings.model_validate({"TEMPORAL_ADDRESS": f"127.0.0.1:{self.stack.temporal_port}"})
        )
        await self.wait_for_pollers()
        self.say(
            f"stack + {len(self.extra)} extra workers up in {time.perf_counter() - t:.0f}s: "
            + ", ".join(f"{lab}={i}" for i, lab in sorted(self.labels.items(), key=lambda x: x[1]))
        )
        _, self.token = keys.create_key(conninfo, "admin", name="scaleout")
        self.receiver.secret = keys.programme_secret(conninfo, PROGRAMME)
        async with httpx.AsyncClient(
            base_url=self.stack.api_url,
            timeout=60,
            headers={"Authorization": f"Bearer {self.token}"},
        ) as http:
            prog = {
                "id": PROGRAMME,
                "name": "Scale-out programme",
                "time_zone": "Europe/Warsaw",
                "languages": ["en", "sv", "pl", "de"],
                "webhook_url": self.receiver.url,
                "partners": [{"id": p, "name": p.upper(), "country": "SE"} for p in PARTNERS],
            }
            r = await self.post(http, "/v1/programmes", prog, ok=(201, 409))
            assert r is not None and r.status_code in (201, 409), r
            self.figures["workers"] = 1 + len(self.extra)
            self.figures["mining"] = await self.mining(http, conninfo)
            self.say("mining split:\n" + json.dumps(self.figures["mining"]["split"], indent=2))
            if not self.args.no_cycle:
                self.figures["cycle"] = await self.cycle(http, conninfo)
        print(json.dumps(self.figures, indent=2))
        m = self.figures["mining"]
        ok = (
            m["status"] == "completed"
            and m["workers_sharing_encode"] >= 2
            and m["texts_encoded"] >= m["statements"] * 0.9
        )
        if not self.args.no_cycle:
            c = self.figures["cycle"]
            survivors = {
                k: v
                for k, v in c["tasks_after_kill"].items()
                if k != self.figures["killed"]["worker"]
            }
            ok = ok and (
                c["status"] == "completed"
                and c["gap_free"]
                and c["duplicate_events"] == 0
                and c["notes_acked_stored_exactly_once"] == c["notes_acked_2xx"] > 0
                and c["outbox_delivered"] == c["outbox_entries"] == c["outbox_received"]
                and c["tasks_by_killed_worker_after_kill"] == 0
                and sum(survivors.values()) > 0
                and self.receiver.bad_signatures == 0
            )
        print("SCALEOUT", "PASSED" if ok else "FAILED", flush=True)
        self.figures["passed"] = ok
        await asyncio.sleep(0.5)  # sdk-python#300
        return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--extra-workers", type=int, default=2, help="workers besides the supervised one (1-4)"
    )
    ap.add_argument("--statements", type=int, default=800, help="SIB-200 sentences to mine")
    ap.add_argument("--batch-size", type=int, default=32, help="statements per encode activity")
    ap.add_argument("--no-cycle", action="store_true", help="only the mining split")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 10_000)
    ap.add_argument("--home", help="state folder (default: a scratch folder under .peerlearn/)")
    ap.add_argument("--out", help="write the figures as JSON here")
    args = ap.parse_args()
    if not 1 <= args.extra_workers <= 4:
        ap.error("--extra-workers must be 1 to 4")
    args.quick, args.kills, args.cycles = True, 1, 1  # what Chaos.__init__ reads
    run = ScaleOut(args)
    code = 1
    try:
        code = asyncio.run(run.main())
        if args.out:
            Path(args.out).write_text(json.dumps({**run.figures, "log": run.log}, indent=2))
    finally:
        run.stop_extra_workers()
        run.stack.stop()
        run.receiver.shutdown()
    sys.stdout.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
