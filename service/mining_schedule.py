"""The nightly re-mine as a Temporal Schedule, and the ``peerlearn mining`` CLI.

``ensure_mining_schedule`` creates the schedule when it is missing and leaves
an existing one alone (so operators may pause or retune it in the Temporal UI);
the worker or ``peerlearn mining schedule`` calls it.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from peerlearn.settings import Settings, get_settings
from workflows.mining import (
    NOTE_RECONCILIATION,
    RECONCILE_SCHEDULE_ID,
    SCHEDULE_ID,
    THEME_MINING,
    MiningProgress,
    ReconcileInput,
    ThemeMiningInput,
    workflow_id_for_run,
)


async def _ensure_schedule(
    client: Client,
    schedule_id: str,
    workflow: str,
    arg: object,
    *,
    task_queue: str,
    every: timedelta,
    execution_timeout: timedelta,
) -> bool:
    """Create an interval schedule that starts `workflow(arg)` unless one with
    this id exists (True when created now). Overlapping runs are skipped, so a
    slow run is never stacked on; Temporal appends the scheduled time to the
    workflow id."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            workflow,
            arg,
            id=schedule_id,
            task_queue=task_queue,
            execution_timeout=execution_timeout,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    try:
        await client.create_schedule(schedule_id, schedule)
        return True
    except ScheduleAlreadyRunningError:
        return False


async def ensure_mining_schedule(
    client: Client,
    settings: Settings,
    *,
    every: timedelta = timedelta(hours=24),
    schedule_id: str = SCHEDULE_ID,
) -> bool:
    """Create the re-mining schedule if absent; True when it was created now."""
    return await _ensure_schedule(
        client,
        schedule_id,
        THEME_MINING,
        ThemeMiningInput(scope="all", trigger="schedule"),
        task_queue=settings.task_queue,
        every=every,
        execution_timeout=timedelta(hours=6),
    )


async def ensure_reconcile_schedule(
    client: Client,
    settings: Settings,
    *,
    every: timedelta = timedelta(minutes=1),
    schedule_id: str = RECONCILE_SCHEDULE_ID,
) -> bool:
    """Create the note-reconciliation schedule if absent (True when created now):
    every minute, notes acknowledged but never mined get their statements."""
    return await _ensure_schedule(
        client,
        schedule_id,
        NOTE_RECONCILIATION,
        ReconcileInput(),
        task_queue=settings.task_queue,
        every=every,
        execution_timeout=timedelta(hours=1),
    )


async def _schedule(args: argparse.Namespace) -> int:
    from peerlearn.temporal import connect

    client = await connect(get_settings())
    created = await ensure_mining_schedule(
        client, get_settings(), every=timedelta(hours=args.every_hours)
    )
    print(f"schedule {SCHEDULE_ID}: {'created' if created else 'already there'}")
    return 0


async def _run(args: argparse.Namespace) -> int:
    from peerlearn import db
    from peerlearn.temporal import connect

    settings = get_settings()
    run_id = uuid.uuid4().hex[:12]
    conninfo = db.database_url(settings)
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO mining_runs (id, scope, trigger) VALUES (%s, %s, 'cli')",
            (run_id, args.scope),
        )
    client = await connect(settings)
    handle = await client.start_workflow(
        THEME_MINING,
        ThemeMiningInput(run_id=run_id, scope=args.scope, trigger="cli"),
        id=workflow_id_for_run(run_id),
        task_queue=settings.task_queue,
        result_type=MiningProgress,
    )
    print(f"mining run {run_id} started ({handle.id})")
    if args.wait:
        result = await handle.result()
        print(f"done: {result.theme_count} themes, {len(result.changes)} changes")
    return 0


def _cmd(args: argparse.Namespace) -> int:
    fn = {"schedule": _schedule, "run": _run}[args.mining_command]

    async def main() -> int:
        code = await fn(args)
        await asyncio.sleep(0.3)  # sdk-python#300
        return code

    return asyncio.run(main())


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("mining", help="re-mine themes now, or ensure the nightly schedule")
    sub = p.add_subparsers(dest="mining_command", required=True)
    s = sub.add_parser("schedule", help="create the ThemeMining schedule if it is missing")
    s.add_argument("--every-hours", type=float, default=24.0)
    r = sub.add_parser("run", help="start a ThemeMining run")
    r.add_argument("--scope", default="all", help="'all' or a programme id")
    r.add_argument("--wait", action="store_true", help="wait for the run to finish")
    p.set_defaults(func=_cmd)
