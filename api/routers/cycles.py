"""/v1/cycles: start cycles, list them, read live status and the event log,
pause, resume, cancel."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from psycopg.rows import dict_row
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api import cycle_ops
from api.auth import CurrentPrincipal, Principal, Role, require
from api.deps import OptionalTemporal, Pool, SettingsDep, TemporalClient
from api.problems import Problem
from api.routers.programmes import programme_row
from api.schemas_cycles import (
    AcceptedOut,
    ChangeOut,
    CycleCreate,
    CyclePage,
    CycleStartedOut,
    CycleStatusOut,
    EventPage,
    ReasonIn,
)
from peerlearn import eventstore
from peerlearn.readside.filters import decode_cursor, encode_cursor
from workflows.cycle import PeerLearningCycle
from workflows.planning import overlap_reason
from workflows.types import (
    CancelCycleInput,
    CycleInput,
    CyclePolicies,
    MeetingPlan,
    MeetingState,
    PauseInput,
    workflow_id_for,
)

router = APIRouter(prefix="/v1/cycles", tags=["cycles"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown cycle or programme"},
    409: {"description": "Duplicate cycle id, or a change the workflow refuses (reason in detail)"},
    422: {"description": "Invalid schedule or field"},
}


# How far ahead a cycle may plan (the schema bounds the policies; this the dates).
MAX_HORIZON = timedelta(days=3653)

CycleStatusName = Literal["running", "paused", "completed", "cancelled"]
PhaseName = Literal["kickoff", "meetings", "wrap_up", "follow_up", "completed", "cancelled"]


def _days(d: float) -> timedelta:
    return timedelta(days=d)


def build_input(
    body: CycleCreate, cycle_id: str, programme: dict[str, Any], now: datetime
) -> CycleInput:
    """Validate the schedule (422 with the first problem) and build the workflow input."""
    partners = [p["id"] for p in programme["partners"]]
    plans: list[MeetingPlan] = []
    seen: set[str] = set()
    for i, m in enumerate(body.meetings, start=1):
        mid = m.meeting_id or f"m{i}"
        where = f"meetings[{i - 1}] ({mid})"
        if mid in seen:
            raise Problem(422, f"{where}: meeting id used twice")
        seen.add(mid)
        if m.starts_at <= now:
            raise Problem(422, f"{where}: starts_at {m.starts_at.isoformat()} is in the past")
        if m.starts_at > now + MAX_HORIZON:
            raise Problem(
                422, f"{where}: starts_at {m.starts_at.isoformat()} is more than 10 years ahead"
            )
        if m.kind == "site_visit" and not m.host:
            raise Problem(422, f"{where}: a site visit needs a host partner")
        if m.host is not None and m.host not in partners:
            raise Problem(422, f"{where}: host {m.host!r} is not a partner of {programme['id']!r}")
        plan = MeetingPlan(
            meeting_id=mid,
            kind=m.kind,
            starts_at=m.starts_at.astimezone(UTC),
            duration=timedelta(minutes=m.duration_minutes),
            title=m.title,
            host=m.host,
            format=m.format,
            topics=m.topics,
            target_groups=m.target_groups,
            participants=m.participants,
        )
        clash = overlap_reason([MeetingState(plan=p) for p in plans], plan.starts_at, plan.ends_at)
        if clash:
            raise Problem(422, f"{where}: {clash}")
        plans.append(plan)
    last_end = max(p.ends_at for p in plans)
    ends_at = body.ends_at.astimezone(UTC) if body.ends_at else last_end + timedelta(days=60)
    if ends_at < last_end:
        raise Problem(422, f"ends_at {ends_at.isoformat()} is before the last meeting ends")
    if ends_at > now + MAX_HORIZON + timedelta(days=366):
        raise Problem(422, f"ends_at {ends_at.isoformat()} is more than 11 years ahead")
    pol = body.policies
    return CycleInput(
        cycle_id=cycle_id,
        programme_id=programme["id"],
        title=body.title,
        partners=partners,
        meetings=plans,
        ends_at=ends_at,
        time_zone=programme["time_zone"],
        policies=CyclePolicies(
            notes_due_after=_days(pol.notes_due_after_days),
            reminder_offsets=[_days(d) for d in pol.reminder_offsets_days],
            prep_pack_lead=_days(pol.prep_pack_lead_days),
            self_assessment_lead=_days(pol.self_assessment_lead_days),
            follow_up_after=_days(pol.follow_up_after_days),
            min_notes_per_meeting=pol.min_notes_per_meeting,
        ),
    )


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=CycleStartedOut, responses=_ERRORS
)
async def start_cycle(
    body: CycleCreate,
    pool: Pool,
    client: TemporalClient,
    settings: SettingsDep,
    principal: Principal = require(Role.manager),
) -> CycleStartedOut:
    """Start a cycle: its workflow then runs the schedule by itself. The same
    cycle id twice is a 409, never a second workflow."""
    principal.check_programme(body.programme_id)
    programme = await programme_row(pool, body.programme_id)
    if programme is None:
        raise Problem(404, f"programme {body.programme_id!r} not found")
    cycle_id = body.cycle_id or "cyc-" + uuid.uuid4().hex[:12]
    inp = build_input(body, cycle_id, programme, datetime.now(UTC))
    if await cycle_ops.cycle_row(pool, cycle_id) is not None:
        raise Problem(409, f"cycle {cycle_id!r} already exists")
    wid = workflow_id_for(cycle_id)
    try:
        await client.start_workflow(
            PeerLearningCycle.run,
            inp,
            id=wid,
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    except WorkflowAlreadyStartedError as exc:
        raise Problem(409, f"cycle {cycle_id!r} already exists") from exc
    return CycleStartedOut(cycle_id=cycle_id, workflow_id=wid)


def _encode(last_id: str) -> str:
    return encode_cursor([last_id])


def _decode(cursor: str) -> str:
    """The last id of the previous page; a tampered cursor is a 400 (the one
    cursor format and check of peerlearn.readside.filters)."""
    values = decode_cursor(cursor, 1, (str,))
    assert values is not None  # only called with a cursor
    return str(values[0])


@router.get("", response_model=CyclePage)
async def list_cycles(
    pool: Pool,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    programme_id: Annotated[str | None, Query(description="Only this programme")] = None,
    status_: Annotated[CycleStatusName | None, Query(alias="status")] = None,
    phase: Annotated[PhaseName | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> dict[str, Any]:
    """Cycles across every programme this key may see, by id, a page at a time."""
    limit = min(limit, settings.max_page_size)
    where: list[str] = ["true"]
    params: list[Any] = []
    allowed = principal.programme_filter()
    if allowed is not None:
        where.append("programme_id = ANY(%s)")
        params.append(allowed)
    if programme_id:
        where.append("programme_id = %s")
        params.append(programme_id)
    if status_:
        where.append("status = %s")
        params.append(status_)
    if phase:
        where.append("phase = %s")
        params.append(phase)
    if cursor:
        where.append("id > %s")
        params.append(_decode(cursor))
    sql = f"SELECT * FROM cycles WHERE {' AND '.join(where)} ORDER BY id LIMIT %s"
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, [*params, limit + 1])
        rows = await cur.fetchall()
    nxt = _encode(rows[limit - 1]["id"]) if len(rows) > limit else None
    return {"items": rows[:limit], "next_cursor": nxt}


@router.get("/{cycle_id}", response_model=CycleStatusOut, responses=_ERRORS)
async def get_cycle_status(
    cycle_id: str, pool: Pool, principal: CurrentPrincipal, client: OptionalTemporal
) -> CycleStatusOut:
    """Live status from the workflow (phase, meetings, next deadline, pending
    reminders), in UTC and the programme's time zone; the read model answers
    when no worker does (``source`` says which)."""
    row = await cycle_ops.visible_cycle(pool, client, cycle_id, principal)
    st = await cycle_ops.live_status(client, cycle_id)
    if st is not None:
        return cycle_ops.status_out(st)
    if "phase" not in row:
        raise Problem(503, f"cycle {cycle_id!r} is starting; try again in a moment")
    return await cycle_ops.read_model_status(pool, row)


@router.get("/{cycle_id}/events", response_model=EventPage, responses=_ERRORS)
async def cycle_events(
    cycle_id: str,
    pool: Pool,
    principal: CurrentPrincipal,
    temporal: OptionalTemporal,
    after_version: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
) -> dict[str, Any]:
    """The cycle's domain events in order (gap-free versions)."""
    await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    async with pool.connection() as conn:
        events = await eventstore.read_stream(
            conn, cycle_id, after_version=after_version, limit=limit
        )
    return {"items": [e.__dict__ for e in events]}


@router.post("/{cycle_id}/pause", response_model=ChangeOut, responses=_ERRORS)
async def pause_cycle(
    cycle_id: str,
    body: ReasonIn,
    pool: Pool,
    client: TemporalClient,
    principal: Principal = require(Role.manager),
) -> Any:
    """Hold the cycle's clock: nothing fires until resumed."""
    return await cycle_ops.update_visible_cycle(
        pool, client, cycle_id, principal, PeerLearningCycle.pause, PauseInput(body.reason)
    )


@router.post("/{cycle_id}/resume", response_model=ChangeOut, responses=_ERRORS)
async def resume_cycle(
    cycle_id: str,
    body: ReasonIn,
    pool: Pool,
    client: TemporalClient,
    principal: Principal = require(Role.manager),
) -> Any:
    return await cycle_ops.update_visible_cycle(
        pool, client, cycle_id, principal, PeerLearningCycle.resume, PauseInput(body.reason)
    )


@router.post(
    "/{cycle_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedOut,
    responses=_ERRORS,
)
async def cancel_cycle(
    cycle_id: str,
    body: ReasonIn,
    pool: Pool,
    client: TemporalClient,
    principal: Principal = require(Role.manager),
) -> AcceptedOut:
    """Cancel the whole cycle with a reason (a signal: 202, the workflow
    records CycleCancelled and stops)."""
    row = await cycle_ops.visible_cycle(pool, client, cycle_id, principal)
    cycle_ops.check_open(row)
    h = cycle_ops.handle(client, cycle_id)
    desc = await h.describe()
    if desc.status != WorkflowExecutionStatus.RUNNING:
        raise Problem(409, f"cycle {cycle_id!r} is no longer running")
    await h.signal(
        PeerLearningCycle.cancel_cycle, CancelCycleInput(reason=body.reason or "cancelled")
    )
    return AcceptedOut(detail=f"cycle {cycle_id!r} is being cancelled")
