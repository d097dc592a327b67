"""Shared builders for the cycle engine tests (not a test module)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.cycle import CycleActivities
from activities.notify import NotifyActivities
from activities.reports import ReportActivities
from peerlearn import eventstore
from peerlearn.events import EventType
from peerlearn.settings import Settings
from workflows.cycle import PeerLearningCycle
from workflows.mining_contract import (
    ASSIGN_NOTE_THEMES,
    AssignNoteThemesInput,
    AssignNoteThemesOutput,
)
from workflows.types import CycleInput, CyclePolicies, MeetingPlan

PARTNERS = ["p1", "p2", "p3", "p4", "p5"]
FAIL_MINING = "FAIL-MINING"


class StubMining:
    """Stands in for the miner: one theme per meeting; fails on a marker text,
    so tests can prove a mining failure never blocks the cycle."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.calls: list[str] = []

    @activity.defn(name=ASSIGN_NOTE_THEMES)
    async def assign_note_themes(self, inp: AssignNoteThemesInput) -> AssignNoteThemesOutput:
        self.calls.append(inp.note_id)
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT text FROM notes WHERE id = %s", (inp.note_id,))
            row = await cur.fetchone()
        if row and FAIL_MINING in row["text"]:  # refused for good, as activities.mining does
            raise ApplicationError("note cannot be mined", type="NoteRejected", non_retryable=True)
        return AssignNoteThemesOutput(statement_count=1, theme_ids=[f"theme-{inp.meeting_id}"])


def cycle_worker(
    client: Client, pool: AsyncConnectionPool, task_queue: str, mining: StubMining | None = None
) -> Worker:
    # the tests' webhook receivers listen on 127.0.0.1 over plain http
    settings = Settings(webhook_allow_private=True, webhook_allow_http=True)
    cyc = CycleActivities(pool, settings)
    mining = mining or StubMining(pool)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[PeerLearningCycle],
        activities=[
            cyc.append_cycle_event,
            cyc.submit_note,
            NotifyActivities(pool, settings, timeout=3).deliver_outbox,
            ReportActivities(pool, settings).build_wrapup_report,
            mining.assign_note_themes,
        ],
    )


async def create_programme(
    pool: AsyncConnectionPool,
    *,
    webhook_url: str | None = None,
    time_zone: str = "Europe/Stockholm",
    contacts: dict[str, list[dict[str, str]]] | None = None,
) -> str:
    """A programme of :data:`PARTNERS` (``contacts``: partner id -> its people)."""
    pid = "prog-" + uuid.uuid4().hex[:8]
    await eventstore.append_event(
        pool,
        stream_id=eventstore.programme_stream(pid),
        type=EventType.PROGRAMME_CREATED,
        payload={
            "id": pid,
            "name": "Test programme",
            "time_zone": time_zone,
            "webhook_url": webhook_url,
            "partners": [
                {
                    "id": p,
                    "name": p.upper(),
                    "country": "SE",
                    "kind": "cluster",
                    "contacts": (contacts or {}).get(p, []),
                }
                for p in PARTNERS
            ],
            "facilitators": [],
            "languages": ["en", "sv"],
        },
        idempotency_key=f"programme:{pid}:created",
        occurred_at=datetime.now(UTC),
    )
    return pid


def six_month_plan(t0: datetime) -> list[MeetingPlan]:
    """A kickoff, then five site visits a month apart, hosted in turn."""
    plan = [
        MeetingPlan(
            meeting_id="kickoff",
            kind="kickoff",
            starts_at=t0 + timedelta(days=3),
            title="Digital kick-off",
            format="online",
        )
    ]
    for i, host in enumerate(PARTNERS, start=1):
        plan.append(
            MeetingPlan(
                meeting_id=f"visit-{i}",
                kind="site_visit",
                host=host,
                starts_at=t0 + timedelta(days=30 * i),
                duration=timedelta(days=1),
                title=f"Site visit {i} at {host}",
                topics=["innovation support"],
            )
        )
    return plan


def cycle_input(
    cycle_id: str, programme_id: str, meetings: list[MeetingPlan], **policy: Any
) -> CycleInput:
    last = max(m.ends_at for m in meetings)
    return CycleInput(
        cycle_id=cycle_id,
        programme_id=programme_id,
        title=f"Cycle {cycle_id}",
        partners=list(PARTNERS),
        meetings=meetings,
        ends_at=last + timedelta(days=60),
        time_zone="Europe/Stockholm",
        policies=CyclePolicies(**policy),
    )


async def event_types(pool: AsyncConnectionPool, stream: str) -> list[str]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT type FROM events WHERE stream_id = %s ORDER BY version", (stream,)
        )
        return [r["type"] for r in await cur.fetchall()]
