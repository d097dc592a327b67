"""The Temporal worker process: ``peerlearn worker``.

One process polls ``settings.task_queue`` for both the cycle workflows and
every activity (database, webhooks, the miner). Run as many as you like
against one Temporal server: they share the queue, which is how mining fans
out across machines. /health knows a worker is alive from Temporal's own
poller list (DescribeTaskQueue) and, because that list lags by up to ~90 s,
from a liveness row each worker writes every few seconds
(:mod:`peerlearn.heartbeats`): a frozen worker is named within ~15 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
from datetime import timedelta
from typing import Any

import psycopg
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from peerlearn import db, heartbeats, legacy_seal
from peerlearn.settings import Settings, get_settings

log = logging.getLogger("peerlearn.worker")

# Modules whose import in a workflow file is safe and whose state is not
# workflow-visible: passing them through keeps the sandbox from re-importing
# them for every workflow run (pydantic alone costs ~100 ms per re-import).
PASSTHROUGH_MODULES = ("pydantic", "pydantic_core", "annotated_types", "peerlearn.settings")


def sandbox_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


def worker_identity() -> str:
    return f"peerlearn-worker-{os.getpid()}@{socket.gethostname()}"


async def keep_beating(conninfo: str, identity: str, task_queue: str) -> None:
    """Upsert this worker's liveness row every few seconds until cancelled, then
    delete it (a graceful stop is not a hang). See :mod:`peerlearn.heartbeats`.

    It runs on the worker's event loop on purpose: a loop too blocked to beat is
    a worker too blocked to poll. Its own connection, not the pool: ten busy
    activities holding every pooled connection must not look like a hang.
    """
    conn: psycopg.AsyncConnection[Any] | None = None
    try:
        while True:
            try:
                if conn is None or conn.closed:
                    conn = await psycopg.AsyncConnection.connect(
                        conninfo, autocommit=True, connect_timeout=5
                    )
                    reaped = await heartbeats.reap_dead_on_this_host(conn)
                    if reaped:
                        log.info("forgot dead workers on this host: %s", ", ".join(reaped))
                await heartbeats.beat(conn, identity, task_queue)
            except psycopg.Error as exc:  # the database is down: /health says so itself
                log.warning("worker heartbeat not written: %s", exc)
                if conn is not None:
                    await conn.close()
                conn = None
            await asyncio.sleep(heartbeats.BEAT_EVERY_S)
    finally:
        if conn is not None and not conn.closed:
            with contextlib.suppress(psycopg.Error):
                await heartbeats.forget(conn, identity)
            await conn.close()


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Poll until ``stop`` is set, then finish in-flight tasks (bounded) and return."""
    from activities import all_activities
    from peerlearn.temporal import connect
    from workflows import ALL_WORKFLOWS

    conninfo = db.database_url(settings)
    db.wait_for_database(conninfo)
    client = await connect(settings)
    pool = await db.open_pool(conninfo, min_size=1, max_size=10)
    identity = worker_identity()
    beating = asyncio.create_task(keep_beating(conninfo, identity, settings.task_queue))
    # note texts from before migration 0015 still clear in the log: sealed (and
    # logged) beside the polling at every start; a no-op once done (issue 12)
    sealing = asyncio.create_task(legacy_seal.seal_at_start(pool))
    try:
        activities: list[Any] = list(all_activities(pool, settings))
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=list(ALL_WORKFLOWS),
            activities=activities,
            workflow_runner=sandbox_runner(),
            identity=identity,
            graceful_shutdown_timeout=timedelta(seconds=10),
            # Eager activities go straight back to the worker that ran the workflow
            # task: measured with bench/scaleout.py, all 28 encode batches of a mining
            # run landed on one of three workers. Through the queue, they spread.
            disable_eager_activity_execution=True,
        )
        log.info(
            "worker polling %s on %s (%d workflows, %d activities)",
            settings.task_queue,
            settings.temporal_target,
            len(ALL_WORKFLOWS),
            len(activities),
        )
        async with worker:
            # The nightly re-mine is a Temporal Schedule; creating it is idempotent,
            # so every worker may try and the first one wins.
            from service.mining_schedule import ensure_mining_schedule, ensure_reconcile_schedule

            try:
                if await ensure_mining_schedule(client, settings):
                    log.info("created the nightly theme-mining schedule")
                if await ensure_reconcile_schedule(client, settings):
                    log.info("created the note-reconciliation schedule")
            except Exception as exc:  # a schedule problem must not stop the worker
                log.warning("could not ensure the theme-mining schedule: %s", exc)
            await stop.wait()
        log.info("worker stopped")
    finally:
        for task in (beating, sealing):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await pool.close()


async def _main(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_worker(settings, stop)
    await asyncio.sleep(0.2)  # let the client's threads settle (sdk-python#300)


def _cmd(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=get_settings().log_level.upper(),
        format="%(asctime)s worker %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    asyncio.run(_main(get_settings()))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "worker", help="run one Temporal worker (workflows and activities) on the task queue"
    )
    p.set_defaults(func=_cmd)
