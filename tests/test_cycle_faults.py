"""A note storage can never hold must not wedge its cycle (issue 10, critical).

The submit-note activity is replaced by one that, for a marked note, stores a
NUL byte as if a bug had let it past the API: PostgreSQL refuses it with a
real ``DataError`` every time. The activity classifies that as non-retryable,
the workflow records ``NoteRejected`` with the reason and answers the update
at once, and everything after still works: later notes, the deadlines, a
late note (flagged and counted), and the cancel."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from cycle_support import StubMining, create_programme, cycle_input, event_types
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.cycle import CycleActivities
from activities.notify import NotifyActivities
from activities.reports import ReportActivities
from peerlearn.settings import Settings
from workflows.cycle import PeerLearningCycle
from workflows.mining_contract import (
    ASSIGN_NOTE_THEMES,
    AssignNoteThemesInput,
    AssignNoteThemesOutput,
)
from workflows.types import (
    SUBMIT_NOTE,
    CancelCycleInput,
    CycleResult,
    MeetingPlan,
    SubmitNoteActivityInput,
    SubmitNoteInput,
    SubmitNoteOutput,
    workflow_id_for,
)

POISON = "POISON-NOTE"
D = timedelta(days=1)


class PoisonedStore(CycleActivities):
    """The real note store, except that a marked note carries a NUL to the database."""

    def __init__(self, pool: AsyncConnectionPool, settings: Settings) -> None:
        super().__init__(pool, settings)
        self.attempts: dict[str, int] = {}

    @activity.defn(name=SUBMIT_NOTE)
    async def submit_poisoned(self, inp: SubmitNoteActivityInput) -> SubmitNoteOutput:
        key = inp.note.client_key
        self.attempts[key] = self.attempts.get(key, 0) + 1
        if POISON in inp.note.text:
            inp = replace(inp, note=replace(inp.note, text=inp.note.text + "\x00"))
        return await self.submit_note(inp)


STUCK = "STUCK-MINING"


class StuckMining(StubMining):
    """The miner, except that it fails (retryably, so forever) on a marked note."""

    @activity.defn(name=ASSIGN_NOTE_THEMES)
    async def assign_note_themes(self, inp: AssignNoteThemesInput) -> AssignNoteThemesOutput:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT text FROM notes WHERE id = %s", (inp.note_id,))
            row = await cur.fetchone()
        if row and STUCK in row["text"]:
            self.calls.append(inp.note_id)
            raise RuntimeError("miner keeps crashing on this note")
        return await super().assign_note_themes(inp)


async def _sleep_until(env: WorkflowEnvironment, at: datetime) -> None:
    now = await env.get_current_time()
    if at > now:
        await env.sleep(at - now)


async def _note(handle: WorkflowHandle[Any, Any], text: str, key: str | None = None) -> str:
    out = await handle.execute_update(
        PeerLearningCycle.submit_notes,
        SubmitNoteInput(
            meeting_id="kickoff",
            client_key=key or uuid.uuid4().hex,
            author_organisation="p1",
            language="en",
            text=text,
        ),
    )
    return cast(SubmitNoteOutput, out).note_id


async def test_a_note_storage_refuses_is_recorded_and_the_cycle_goes_on(
    time_skipping_env: WorkflowEnvironment, pool: AsyncConnectionPool
) -> None:
    env = time_skipping_env
    tq = "cycle-faults-" + uuid.uuid4().hex[:6]
    pid = await create_programme(pool)
    cid = "fault-" + uuid.uuid4().hex[:6]
    t0 = await env.get_current_time()
    plan = [
        MeetingPlan(meeting_id="kickoff", kind="kickoff", starts_at=t0 + D, format="online"),
        MeetingPlan(meeting_id="visit-1", kind="site_visit", host="p2", starts_at=t0 + 60 * D),
    ]
    inp = cycle_input(cid, pid, plan, reminder_offsets=[3 * D], notes_due_after=7 * D)
    settings = Settings()
    store = PoisonedStore(pool, settings)
    mining = StuckMining(pool)
    worker = Worker(
        env.client,
        task_queue=tq,
        workflows=[PeerLearningCycle],
        activities=[
            store.append_cycle_event,
            store.submit_poisoned,
            NotifyActivities(pool, settings, timeout=3).deliver_outbox,
            ReportActivities(pool, settings).build_wrapup_report,
            mining.assign_note_themes,
        ],
    )
    async with worker:
        handle = await env.client.start_workflow(
            PeerLearningCycle.run,
            inp,
            id=workflow_id_for(cid),
            task_queue=tq,
            execution_timeout=timedelta(days=400),
        )
        await _sleep_until(env, plan[0].starts_at + timedelta(hours=1))

        # The poisoned note: refused once (no retry), with the database's reason.
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await _note(handle, f"Looks fine to the API {POISON}", key="poison")
        cause = failed.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "Invalid"
        # The database's own reason travels with the refusal (its wording depends on
        # whether psycopg or the server refuses the byte, so match the class only).
        assert "not stored" in cause.message and "refused" in cause.message
        assert store.attempts["poison"] == 1
        types = await event_types(pool, cid)
        assert types[-1] == "NoteRejected"

        # Later notes are accepted at once.
        good = await _note(handle, "The method works.")
        st = await handle.query(PeerLearningCycle.status)
        kickoff = next(m for m in st.meetings if m.meeting_id == "kickoff")
        assert kickoff.note_count == 1

        # The deadline still comes: the window closes on time.
        assert kickoff.notes_due_at is not None
        await _sleep_until(env, kickoff.notes_due_at + timedelta(hours=1))
        assert "NoteWindowClosed" in await event_types(pool, cid)

        # A note after the window closed is accepted, flagged late and counted.
        late = await _note(handle, "Sorry, we forgot: matchmaking helped.")
        st = await handle.query(PeerLearningCycle.status)
        kickoff = next(m for m in st.meetings if m.meeting_id == "kickoff")
        assert (kickoff.note_count, kickoff.late_notes) == (2, 1)

        # Cancel is recorded, even with a note whose mining keeps failing.
        await _note(handle, f"Mining crashes on this one {STUCK}")
        await env.sleep(timedelta(minutes=10))  # a few failed mining attempts
        assert len(mining.calls) >= 2
        await handle.signal(PeerLearningCycle.cancel_cycle, CancelCycleInput(reason="test over"))
        result: CycleResult = await handle.result()
        assert result.status == "cancelled"

    types = await event_types(pool, cid)
    assert types[-1] == "CycleCancelled"
    assert types.count("NoteRejected") == 1 and types.count("NotesSubmitted") == 3
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT payload FROM events WHERE stream_id = %s AND type = 'NoteRejected'", (cid,)
        )
        rejected = await cur.fetchone()
        await cur.execute("SELECT id FROM notes WHERE cycle_id = %s ORDER BY submitted_at", (cid,))
        stored = [r["id"] for r in await cur.fetchall()]
        await cur.execute(
            "SELECT payload FROM events WHERE stream_id = %s AND type = 'NotesSubmitted'"
            " ORDER BY version",
            (cid,),
        )
        submitted = [r["payload"] for r in await cur.fetchall()]
    assert rejected is not None and rejected["payload"]["client_key"] == "poison"
    reason = rejected["payload"]["reason"]
    assert "refused" in reason and POISON not in reason  # no note text leaks
    assert stored[:2] == [good, late] and len(stored) == 3
    assert [p.get("late", False) for p in submitted] == [False, True, True]


async def test_the_workflow_refuses_unstorable_text_before_accepting_it(
    time_skipping_env: WorkflowEnvironment, pool: AsyncConnectionPool
) -> None:
    """Defence in depth: whatever the API lets through, the update validator
    refuses NUL and other control characters, so nothing is even attempted."""
    env = time_skipping_env
    tq = "cycle-faults-" + uuid.uuid4().hex[:6]
    pid = await create_programme(pool)
    cid = "fault-" + uuid.uuid4().hex[:6]
    t0 = await env.get_current_time()
    plan = [MeetingPlan(meeting_id="kickoff", kind="kickoff", starts_at=t0 + D, format="online")]
    settings = Settings()
    store = PoisonedStore(pool, settings)
    async with Worker(
        env.client,
        task_queue=tq,
        workflows=[PeerLearningCycle],
        activities=[store.append_cycle_event, store.submit_poisoned],
    ):
        handle = await env.client.start_workflow(
            PeerLearningCycle.run,
            cycle_input(cid, pid, plan),
            id=workflow_id_for(cid),
            task_queue=tq,
            execution_timeout=timedelta(days=400),
        )
        await _sleep_until(env, plan[0].starts_at + timedelta(hours=1))
        for text, what in (("a\x00b", "NUL"), ("x\x1b[31m", "U+001B")):
            with pytest.raises(WorkflowUpdateFailedError) as failed:
                await _note(handle, text)
            cause = failed.value.cause
            assert isinstance(cause, ApplicationError) and cause.type == "Invalid"
            assert what in cause.message and "position 1" in cause.message
        assert store.attempts == {}
        await handle.signal(PeerLearningCycle.cancel_cycle, CancelCycleInput(reason="done"))
        assert (await handle.result()).status == "cancelled"
