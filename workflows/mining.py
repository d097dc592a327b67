"""ThemeMining: re-mine every statement (or one programme's) into themes.

Stages: ``loading`` (count what to do) → ``encoding`` (batches of statements
fanned out as activities, so every worker on the queue shares the encoding;
each batch heartbeats and skips texts already in the pgvector cache) →
``clustering`` (one activity mines with the previous ThemeModel, so ids stay
stable, and saves themes, assignments, practices and change events) → ``done``.
The ``progress`` query answers statements done / total and the stage.

Only stdlib and temporalio are imported here: numpy and torch stay in activities.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

THEME_MINING = "ThemeMining"
PROGRESS_QUERY = "progress"
MINING_PREPARE = "mining_prepare"
MINING_ENCODE_BATCH = "mining_encode_batch"
MINING_CLUSTER = "mining_cluster"
MINING_FAIL = "mining_fail"
MINING_RECONCILE = "mining_reconcile"
SCHEDULE_ID = "theme-mining-nightly"
NOTE_RECONCILIATION = "NoteReconciliation"
RECONCILE_SCHEDULE_ID = "note-reconciliation"
# Replay safety: ThemeMining runs started before reconciliation existed skip it.
RECONCILE_PATCH = "reconcile-before-mining"


def workflow_id_for_run(run_id: str) -> str:
    return f"theme-mining-{run_id}"


@dataclass
class ThemeMiningInput:
    run_id: str = ""  # empty (scheduled runs): the workflow id is the run id
    scope: str = "all"  # 'all' or a programme id
    trigger: str = "api"  # api | schedule | cli
    batch_size: int = 256
    parallelism: int = 4  # encode batches in flight at once
    seed: int = 0


@dataclass
class MiningProgress:
    run_id: str
    scope: str
    status: str = "running"  # running | completed | failed
    stage: str = "queued"
    done: int = 0
    total: int = 0
    batches_done: int = 0
    batches_total: int = 0
    theme_count: int | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass
class MiningPrepareInput:
    run_id: str
    scope: str
    trigger: str
    batch_size: int


@dataclass
class MiningPrepareOutput:
    total: int
    batches: list[int] = field(default_factory=list)  # offsets
    cached: int = 0


@dataclass
class MiningBatchInput:
    run_id: str
    scope: str
    offset: int
    limit: int


@dataclass
class MiningBatchOutput:
    statements: int = 0
    encoded: int = 0


@dataclass
class MiningClusterInput:
    run_id: str
    scope: str
    seed: int = 0


@dataclass
class MiningClusterOutput:
    theme_count: int = 0
    assigned: int = 0
    unassigned: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class MiningFailInput:
    run_id: str
    error: str


@dataclass
class ReconcileInput:
    """Mine the notes of ``scope`` that have no statements yet.

    ``min_age_s`` leaves recent notes to the cycle's own mining activity (a
    note mined twice is harmless, only wasted work); ``limit`` bounds one pass.
    """

    scope: str = "all"
    min_age_s: float = 120.0
    limit: int = 500


@dataclass
class ReconcileOutput:
    notes: int = 0  # notes mined in this pass
    statements: int = 0
    rejected: int = 0  # notes the miner refuses for good (recorded as NoteRejected)


@workflow.defn(name=THEME_MINING)
class ThemeMining:
    def __init__(self) -> None:
        self._progress = MiningProgress(run_id="", scope="all")

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> MiningProgress:
        return self._progress

    @workflow.run
    async def run(self, inp: ThemeMiningInput) -> MiningProgress:
        run_id = inp.run_id or workflow.info().workflow_id
        p = self._progress = MiningProgress(run_id=run_id, scope=inp.scope, stage="loading")
        retry = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=1))
        try:
            if workflow.patched(RECONCILE_PATCH):
                # notes that never got statements (imports, or a cycle's mining
                # that has not succeeded yet) join this run instead of waiting
                await workflow.execute_activity(
                    MINING_RECONCILE,
                    ReconcileInput(scope=inp.scope, min_age_s=0.0),
                    result_type=ReconcileOutput,
                    start_to_close_timeout=timedelta(minutes=30),
                    heartbeat_timeout=timedelta(seconds=60),
                    retry_policy=retry,
                )
            prep: MiningPrepareOutput = await workflow.execute_activity(
                MINING_PREPARE,
                MiningPrepareInput(run_id, inp.scope, inp.trigger, inp.batch_size),
                result_type=MiningPrepareOutput,
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=retry,
            )
            p.total = prep.total
            p.batches_total = len(prep.batches)
            p.stage = "encoding"
            sem = asyncio.Semaphore(max(1, inp.parallelism))

            async def one(offset: int) -> None:
                async with sem:
                    out: MiningBatchOutput = await workflow.execute_activity(
                        MINING_ENCODE_BATCH,
                        MiningBatchInput(run_id, inp.scope, offset, inp.batch_size),
                        result_type=MiningBatchOutput,
                        start_to_close_timeout=timedelta(minutes=30),
                        heartbeat_timeout=timedelta(seconds=60),
                        retry_policy=retry,
                    )
                    p.done += out.statements
                    p.batches_done += 1

            await asyncio.gather(*(one(o) for o in prep.batches))
            p.done = max(p.done, p.total) if p.batches_done == p.batches_total else p.done
            p.stage = "clustering"
            res: MiningClusterOutput = await workflow.execute_activity(
                MINING_CLUSTER,
                MiningClusterInput(run_id, inp.scope, inp.seed),
                result_type=MiningClusterOutput,
                start_to_close_timeout=timedelta(minutes=60),
                heartbeat_timeout=timedelta(seconds=60),
                retry_policy=retry,
            )
            p.theme_count = res.theme_count
            p.changes = res.changes
            p.stage = "done"
            p.status = "completed"
            return p
        except ActivityError as err:
            p.status = "failed"
            p.error = str(err.cause or err)
            await workflow.execute_activity(
                MINING_FAIL,
                MiningFailInput(run_id, p.error),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
            raise


@workflow.defn(name=NOTE_RECONCILIATION)
class NoteReconciliation:
    """One reconciliation pass, started by a Schedule every minute: every note
    acknowledged by the API ends up with its statements even if its cycle's
    mining activity never ran (import, lost history) or has not succeeded yet."""

    @workflow.run
    async def run(self, inp: ReconcileInput) -> ReconcileOutput:
        out: ReconcileOutput = await workflow.execute_activity(
            MINING_RECONCILE,
            inp,
            result_type=ReconcileOutput,
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=2),
                maximum_interval=timedelta(seconds=30),
                maximum_attempts=5,
            ),
        )
        return out
