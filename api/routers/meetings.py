"""/v1/cycles/{cycle_id}/meetings: change a running cycle's schedule.

Every change is a workflow update: the workflow's validator decides, so a
refusal (past date, non-partner host, overlap, held or cancelled meeting,
cancelled cycle) is a 409 with its reason and leaves no event and no trace in
history. Marking a meeting held is a signal (202)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, status

from api import cycle_ops
from api.auth import Principal, Role, require
from api.deps import Pool, TemporalClient
from api.problems import Problem
from api.schemas_cycles import (
    AcceptedOut,
    ChangeOut,
    HostIn,
    MarkHeldIn,
    MeetingIn,
    MoveIn,
    ReasonIn,
)
from workflows.cycle import PeerLearningCycle
from workflows.types import (
    SCHEDULED,
    AddMeetingInput,
    CancelMeetingInput,
    MarkHeldInput,
    MeetingPlan,
    MoveMeetingInput,
    SwapHostInput,
)

router = APIRouter(prefix="/v1/cycles/{cycle_id}/meetings", tags=["meetings"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown cycle or meeting"},
    409: {"description": "The workflow refused the change; detail holds its reason"},
    422: {"description": "Invalid field"},
}
Manager = require(Role.manager)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ChangeOut, responses=_ERRORS)
async def add_meeting(
    cycle_id: str,
    body: MeetingIn,
    pool: Pool,
    client: TemporalClient,
    principal: Principal = Manager,
) -> Any:
    """Add a meeting (in the future, inside the cycle, overlapping none)."""
    plan = MeetingPlan(
        meeting_id=body.meeting_id or "m-" + uuid.uuid4().hex[:8],
        kind=body.kind,
        starts_at=body.starts_at.astimezone(UTC),
        duration=timedelta(minutes=body.duration_minutes),
        title=body.title,
        host=body.host,
        format=body.format,
        topics=body.topics,
        target_groups=body.target_groups,
        participants=body.participants,
    )
    return await cycle_ops.update_visible_cycle(
        pool, client, cycle_id, principal, PeerLearningCycle.add_meeting, AddMeetingInput(plan)
    )


@router.post("/{meeting_id}/move", response_model=ChangeOut, responses=_ERRORS)
async def move_meeting(
    cycle_id: str,
    meeting_id: str,
    body: MoveIn,
    pool: Pool,
    client: TemporalClient,
    principal: Principal = Manager,
) -> Any:
    """Move a meeting not yet held; its timers (preparation pack, reminders) re-plan."""
    dur = timedelta(minutes=body.duration_minutes) if body.duration_minutes else None
    return await cycle_ops.update_visible_cycle(
        pool,
        client,
        cycle_id,
        principal,
        PeerLearningCycle.move_meeting,
        MoveMeetingInput(
            meeting_id=meeting_id, starts_at=body.starts_at.astimezone(UTC), duration=dur
        ),
    )


@router.post("/{meeting_id}/host", response_model=ChangeOut, responses=_ERRORS)
async def swap_host(
    cycle_id: str,
    meeting_id: str,
    body: HostIn,
    pool: Pool,
    client: TemporalClient,
    principal: Principal = Manager,
) -> Any:
    """Give the meeting another host (must be a partner of the programme)."""
    return await cycle_ops.update_visible_cycle(
        pool,
        client,
        cycle_id,
        principal,
        PeerLearningCycle.swap_host,
        SwapHostInput(meeting_id=meeting_id, host=body.host),
    )


@router.post("/{meeting_id}/cancel", response_model=ChangeOut, responses=_ERRORS)
async def cancel_meeting(
    cycle_id: str,
    meeting_id: str,
    body: ReasonIn,
    pool: Pool,
    client: TemporalClient,
    principal: Principal = Manager,
) -> Any:
    """Cancel a meeting that has not been held."""
    return await cycle_ops.update_visible_cycle(
        pool,
        client,
        cycle_id,
        principal,
        PeerLearningCycle.cancel_meeting,
        CancelMeetingInput(meeting_id=meeting_id, reason=body.reason),
    )


@router.post(
    "/{meeting_id}/held",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AcceptedOut,
    responses=_ERRORS,
)
async def mark_held(
    cycle_id: str,
    meeting_id: str,
    body: MarkHeldIn,
    pool: Pool,
    client: TemporalClient,
    principal: Principal = Manager,
) -> AcceptedOut:
    """Mark a meeting held now (or at ``held_at`` in the past): its note window opens."""
    row = await cycle_ops.visible_cycle(pool, client, cycle_id, principal)
    cycle_ops.check_open(row)
    now = datetime.now(UTC)
    if body.held_at is not None and body.held_at > now:
        raise Problem(422, "held_at: a meeting cannot be held in the future")
    began = row.get("created_at")
    if body.held_at is not None and began is not None and body.held_at < began:
        raise Problem(
            422,
            f"held_at: {body.held_at.isoformat()} is before the cycle began ({began.isoformat()})",
        )
    st = await cycle_ops.live_status(client, cycle_id)
    if st is None:
        raise Problem(503, "the cycle's worker did not answer; try again")
    meeting = next((m for m in st.meetings if m.meeting_id == meeting_id), None)
    if meeting is None:
        raise Problem(404, f"meeting {meeting_id!r} is not part of cycle {cycle_id!r}")
    if meeting.state != SCHEDULED:
        raise Problem(409, f"meeting {meeting_id!r} is {meeting.state}; it cannot be marked held")
    await cycle_ops.handle(client, cycle_id).signal(
        PeerLearningCycle.mark_held, MarkHeldInput(meeting_id=meeting_id, held_at=body.held_at)
    )
    return AcceptedOut(detail=f"meeting {meeting_id!r} will be marked held")
