"""What the cycle routers share: finding a cycle the caller may see, turning
workflow refusals into problem+json, and shaping status with local times."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import Principal
from api.problems import Problem
from api.schemas_cycles import CycleStatusOut, DeadlineOut, LocalTime, MeetingOut
from workflows.cycle import PeerLearningCycle
from workflows.types import CycleStatus, workflow_id_for

QUERY_TIMEOUT = timedelta(seconds=5)
UPDATE_TIMEOUT = timedelta(seconds=30)


def local(dt: datetime, tz: str) -> LocalTime:
    """The instant in UTC and in the programme's zone. An instant at the edge
    of what ``datetime`` holds (stored before inputs were bounded) shows its
    UTC form as the local one instead of failing the whole status."""
    utc = dt.astimezone(ZoneInfo("UTC"))
    try:
        shown = dt.astimezone(ZoneInfo(tz)).isoformat()
    except (OverflowError, ValueError):
        shown = utc.isoformat()
    return LocalTime(utc=utc, local=shown)


def local_opt(dt: datetime | None, tz: str) -> LocalTime | None:
    return local(dt, tz) if dt is not None else None


async def cycle_row(pool: AsyncConnectionPool, cycle_id: str) -> dict[str, Any] | None:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM cycles WHERE id = %s", (cycle_id,))
        return await cur.fetchone()


async def live_status(client: Client | None, cycle_id: str) -> CycleStatus | None:
    """The workflow's own answer, or None when no worker answers in time."""
    if client is None:
        return None
    try:
        return await client.get_workflow_handle(workflow_id_for(cycle_id)).query(
            PeerLearningCycle.status, rpc_timeout=QUERY_TIMEOUT
        )
    except (RPCError, TimeoutError, ApplicationError):
        return None
    except Exception:  # a query failure must not break reads; fall back
        return None


async def visible_cycle(
    pool: AsyncConnectionPool, client: Client | None, cycle_id: str, principal: Principal
) -> dict[str, Any]:
    """The cycle's read-model row (or a minimal one from the workflow right
    after start), checked against the caller's grant; 404 if unknown."""
    row = await cycle_row(pool, cycle_id)
    if row is None:
        st = await live_status(client, cycle_id)
        if st is None:
            raise Problem(404, f"cycle {cycle_id!r} not found")
        row = {
            "id": cycle_id,
            "programme_id": st.programme_id,
            "status": st.status,
            "cancel_reason": st.cancel_reason,
            "time_zone": st.time_zone,
        }
    principal.check_cycle(cycle_id, row["programme_id"])
    return row


async def meeting_row(pool: AsyncConnectionPool, cycle_id: str, meeting_id: str) -> dict[str, Any]:
    """The meeting as the meeting-scoped routes (topic votes, self-assessment)
    check it: its host, state, kind and preparation-pack time, the cycle's
    partners and the programme's self-assessment questions; 404 when the cycle
    has no such meeting. One lookup, so both answer an unknown meeting alike."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT m.host, m.state, m.kind, m.prep_sent_at, c.partners,"
            " p.self_assessment_questions AS questions"
            " FROM meetings m JOIN cycles c ON c.id = m.cycle_id"
            " JOIN programmes p ON p.id = c.programme_id"
            " WHERE m.cycle_id = %s AND m.id = %s",
            (cycle_id, meeting_id),
        )
        row = await cur.fetchone()
    if row is None:
        raise Problem(404, f"meeting {meeting_id!r} not found in cycle {cycle_id!r}")
    return row


def check_open(row: dict[str, Any]) -> None:
    if row.get("status") == "cancelled":
        raise Problem(
            409, f"cycle {row['id']!r} is cancelled ({row.get('cancel_reason') or 'no reason'})"
        )
    if row.get("status") == "completed":
        raise Problem(409, f"cycle {row['id']!r} is completed")


def handle(client: Client, cycle_id: str) -> WorkflowHandle[Any, Any]:
    return client.get_workflow_handle(workflow_id_for(cycle_id))


async def run_update(
    client: Client, row: dict[str, Any], update: Any, arg: Any, *, update_id: str | None = None
) -> Any:
    """Execute a workflow update; a validator's refusal becomes 409 (404 for an
    unknown meeting) carrying the validator's reason."""
    check_open(row)
    try:
        return await handle(client, row["id"]).execute_update(
            update, arg, id=update_id, rpc_timeout=UPDATE_TIMEOUT
        )
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        msg = getattr(cause, "message", None) or str(cause)
        kind = cause.type if isinstance(cause, ApplicationError) else None
        status = {"NotFound": 404, "Invalid": 422, "Unavailable": 503}.get(kind or "", 409)
        raise Problem(status, msg) from exc
    except WorkflowUpdateRPCTimeoutOrCancelledError as exc:
        raise Problem(503, "the cycle's worker did not answer in time; try again") from exc
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise Problem(409, f"cycle {row['id']!r} is no longer running: {exc.message}") from exc
        raise Problem(503, f"Temporal refused the change: {exc.message}") from exc


async def update_visible_cycle(
    pool: AsyncConnectionPool,
    client: Client,
    cycle_id: str,
    principal: Principal,
    update: Any,
    arg: Any,
) -> Any:
    """The one path of every manager change routed to the cycle's workflow:
    check the caller may see the cycle (404 otherwise), then run the update
    (its refusals mapped as `run_update` does)."""
    row = await visible_cycle(pool, client, cycle_id, principal)
    return await run_update(client, row, update, arg)


def status_out(st: CycleStatus) -> CycleStatusOut:
    tz = st.time_zone

    def dl(d: Any) -> DeadlineOut:
        return DeadlineOut(at=local(d.at, tz), action=d.action, meeting_id=d.meeting_id)

    return CycleStatusOut(
        cycle_id=st.cycle_id,
        programme_id=st.programme_id,
        title=st.title,
        phase=st.phase,
        status=st.status,
        time_zone=tz,
        ends_at=local(st.ends_at, tz),
        meetings=[
            MeetingOut(
                meeting_id=m.meeting_id,
                kind=m.kind,
                title=m.title,
                host=m.host,
                format=m.format,
                starts_at=local(m.starts_at, tz),
                ends_at=local(m.ends_at, tz),
                state=m.state,
                held_at=local_opt(m.held_at, tz),
                notes_due_at=local_opt(m.notes_due_at, tz),
                note_count=m.note_count,
                prep_sent=m.prep_sent,
                reminders_sent=m.reminders_sent,
                escalated=m.escalated,
                topics=m.topics,
                cancel_reason=m.cancel_reason,
                late_notes=m.late_notes,
            )
            for m in sorted(st.meetings, key=lambda m: m.starts_at)
        ],
        note_counts=st.note_counts,
        next_deadline=dl(st.next_deadline) if st.next_deadline else None,
        pending_reminders=[dl(d) for d in st.pending_reminders],
        cancel_reason=st.cancel_reason,
        report_id=st.report_id,
        follow_up_at=local_opt(st.follow_up_at, tz),
        events=st.events,
        history_length=st.history_length,
        source="workflow",
    )


async def read_model_status(pool: AsyncConnectionPool, row: dict[str, Any]) -> CycleStatusOut:
    """Status from the projections when the workflow cannot be queried."""
    tz = row["time_zone"]
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        # late: submitted after the meeting's note window closed (derived, not stored)
        await cur.execute(
            "SELECT m.*, (SELECT count(*) FROM notes n WHERE n.cycle_id = m.cycle_id"
            " AND n.meeting_id = m.id AND m.window_closed_at IS NOT NULL"
            " AND n.submitted_at > m.window_closed_at) AS late_notes"
            " FROM meetings m WHERE m.cycle_id = %s ORDER BY m.starts_at, m.id",
            (row["id"],),
        )
        meetings = await cur.fetchall()
    return CycleStatusOut(
        cycle_id=row["id"],
        programme_id=row["programme_id"],
        title=row["title"],
        phase=row["phase"],
        status=row["status"],
        time_zone=tz,
        ends_at=local(row["ends_at"], tz),
        meetings=[
            MeetingOut(
                meeting_id=m["id"],
                kind=m["kind"],
                title=m["title"],
                host=m["host"],
                format=m["format"],
                starts_at=local(m["starts_at"], tz),
                ends_at=local(m["ends_at"], tz),
                state=m["state"],
                held_at=local_opt(m["held_at"], tz),
                notes_due_at=local_opt(m["notes_due_at"], tz),
                note_count=m["note_count"],
                prep_sent=m["prep_sent_at"] is not None,
                reminders_sent=m["reminders_sent"],
                escalated=m["escalated_at"] is not None,
                topics=m["topics"],
                cancel_reason=m["cancel_reason"],
                late_notes=m["late_notes"],
            )
            for m in meetings
        ],
        note_counts={m["id"]: m["note_count"] for m in meetings},
        next_deadline=None,
        pending_reminders=[],
        cancel_reason=row["cancel_reason"],
        report_id=row["report_id"],
        follow_up_at=local_opt(row["follow_up_at"], tz),
        events=row["version"],
        source="read_model",
    )
