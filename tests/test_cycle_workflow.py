"""The PeerLearningCycle workflow under the time-skipping server: a six-month
cycle runs in seconds; preparation packs, reminders and the escalation land in
the outbox at the right simulated times; continue-as-new keeps history short."""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

from cycle_support import (
    FAIL_MINING,
    StubMining,
    create_programme,
    cycle_input,
    cycle_worker,
    event_types,
    six_month_plan,
)
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from workflows.cycle import PeerLearningCycle
from workflows.types import CycleResult, SubmitNoteInput, SubmitNoteOutput, workflow_id_for

HISTORIES = Path(__file__).parent / "histories"
CLOSE = timedelta(minutes=1)  # a timer fires within this of its due time


async def _sleep_until(env: WorkflowEnvironment, at: datetime) -> None:
    now = await env.get_current_time()
    if at > now:
        await env.sleep(at - now)


async def _note(
    handle: WorkflowHandle[PeerLearningCycle, CycleResult],
    meeting_id: str,
    org: str,
    text: str,
    key: str | None = None,
) -> str:
    # @workflow.update(name=...) types an async handler's result as its
    # coroutine; the update really answers with a SubmitNoteOutput.
    out = await handle.execute_update(
        PeerLearningCycle.submit_notes,
        SubmitNoteInput(
            meeting_id=meeting_id,
            client_key=key or uuid.uuid4().hex,
            author_organisation=org,
            language="en",
            text=text,
        ),
    )
    return cast(SubmitNoteOutput, out).note_id


async def test_six_month_cycle_completes_under_time_skipping(
    time_skipping_env: WorkflowEnvironment, pool: AsyncConnectionPool
) -> None:
    env = time_skipping_env
    tq = "cycle-ts-" + uuid.uuid4().hex[:6]
    pid = await create_programme(pool)
    cycle_id = "six-" + uuid.uuid4().hex[:6]
    t0 = await env.get_current_time()
    plan = six_month_plan(t0)
    inp = cycle_input(cycle_id, pid, plan, continue_as_new_after=150)
    mining = StubMining(pool)
    async with cycle_worker(env.client, pool, tq, mining):
        handle = await env.client.start_workflow(
            PeerLearningCycle.run,
            inp,
            id=workflow_id_for(cycle_id),
            task_queue=tq,
            execution_timeout=timedelta(days=400),
        )
        first_run = handle.first_execution_run_id
        # Kickoff notes right after it is held: no reminder for it.
        await _sleep_until(env, plan[0].starts_at + timedelta(hours=1))
        await _note(handle, "kickoff", "p1", "We agreed on the method.\nAction: send the agenda")
        # Visits 1-4: notes after the first reminder (due-3d), before the second (due-1d).
        for m in plan[1:5]:
            await _sleep_until(env, m.starts_at + timedelta(days=5))
            text = "Peers liked the matchmaking events." + (
                f" {FAIL_MINING}" if m.meeting_id == "visit-2" else ""
            )
            await _note(handle, m.meeting_id, m.host or "p1", text)
        # Visit 5 never gets notes: two reminders, then one escalation.
        # The start handle unlocks time skipping while it waits (and follows
        # continue-as-new runs).
        result = await handle.result()
        assert result.status == "completed"
        if os.environ.get("PEERLEARN_RECORD_HISTORIES"):
            for name, run_id in (("six_month_first_run", first_run), ("six_month_last_run", None)):
                h = await env.client.get_workflow_handle(
                    workflow_id_for(cycle_id), run_id=run_id
                ).fetch_history()
                (HISTORIES / f"{name}.json").write_text(h.to_json())
        # continue-as-new kept every run's history bounded
        status = await handle.query(PeerLearningCycle.status)
        assert status.runs > 1 and status.history_length < 200

    types = await event_types(pool, cycle_id)
    assert types[0] == "CycleStarted" and types[-1] == "CycleCompleted"
    assert types.count("MeetingHeld") == 6
    assert types.count("NotesSubmitted") == 5
    assert types.count("ThemesUpdated") == 4  # visit-2's mining failed; the cycle went on
    assert types.count("ReminderSent") == 6
    assert types.count("NotesOverdue") == 1
    assert types.count("NoteWindowClosed") == 5
    core = [
        t
        for t in types
        if t in ("MeetingHeld", "NotesOverdue", "WrapUpPublished", "FollowUpDue", "CycleCompleted")
    ]
    assert core == ["MeetingHeld"] * 6 + [
        "NotesOverdue",
        "WrapUpPublished",
        "FollowUpDue",
        "CycleCompleted",
    ]

    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT version FROM events WHERE stream_id = %s ORDER BY version", (cycle_id,)
        )
        versions = [r["version"] for r in await cur.fetchall()]
        assert versions == list(range(1, len(versions) + 1))  # gap-free, no duplicates
        await cur.execute(
            "SELECT kind, meeting_id, created_at FROM outbox WHERE cycle_id = %s"
            " ORDER BY created_at, id",
            (cycle_id,),
        )
        outbox = await cur.fetchall()
        await cur.execute("SELECT * FROM reports WHERE cycle_id = %s", (cycle_id,))
        report = await cur.fetchone()
        await cur.execute("SELECT * FROM action_items WHERE cycle_id = %s ORDER BY id", (cycle_id,))
        actions = await cur.fetchall()
        await cur.execute("SELECT status, phase FROM cycles WHERE id = %s", (cycle_id,))
        cyc = await cur.fetchone()

    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row in outbox:
        by_kind.setdefault(row["kind"], []).append(row)
    assert {k: len(v) for k, v in by_kind.items()} == {
        "invitation": 1,  # the cycle's calendar invitations (e-mailed per meeting and person)
        "self_assessment": 5,
        "preparation_pack": 6,
        "reminder": 6,
        "escalation": 1,
        "feedback": 5,  # each site visit's host, when its note window closes
        "self_assessment_reminder": 5,  # mailed only if the host has not answered
        "wrapup_published": 1,
        "follow_up": 1,
        "action_overdue": 1,  # the wrap-up's action items are past due at the follow-up
    }
    starts = {m.meeting_id: m.starts_at for m in plan}
    for row in by_kind["preparation_pack"]:
        due = max(starts[row["meeting_id"]] - timedelta(days=14), t0)
        assert abs(row["created_at"] - due) < CLOSE, row
    for row in by_kind["self_assessment"]:
        assert abs(row["created_at"] - (starts[row["meeting_id"]] - timedelta(days=21))) < CLOSE
    reminders = [(r["meeting_id"], r["created_at"]) for r in by_kind["reminder"]]
    for mid, at in reminders:
        due = starts[mid] + timedelta(days=7)
        assert min(abs(at - (due - timedelta(days=3))), abs(at - (due - timedelta(days=1)))) < CLOSE
    assert [m for m, _ in reminders].count("visit-5") == 2
    esc = by_kind["escalation"][0]
    assert esc["meeting_id"] == "visit-5"
    assert abs(esc["created_at"] - (starts["visit-5"] + timedelta(days=7))) < CLOSE
    fu = by_kind["follow_up"][0]["created_at"] - by_kind["wrapup_published"][0]["created_at"]
    assert abs(fu - timedelta(days=90)) < CLOSE

    assert report is not None
    content = report["content"]
    assert content["summary"]["meetings_held"] == 6 and content["summary"]["notes"] == 5
    assert "# Wrap-up" in report["markdown"] and "send the agenda" in report["markdown"]
    assert {a["owner"] for a in actions} >= {"p1", "p2", "p3", "p4", "p5"}
    assert cyc is not None and (cyc["status"], cyc["phase"]) == ("completed", "completed")
    assert len(mining.calls) >= 5


def test_recorded_histories_are_json() -> None:
    files = sorted(HISTORIES.glob("*.json"))
    assert files, "tests/histories/ holds saved histories for the replay test"
    for f in files:
        assert json.loads(f.read_text())["events"]
