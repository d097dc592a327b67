"""POST /v1/cycles/plan: propose a cycle's host rotation; starts nothing.

The manager page and API clients share one planner
(:func:`peerlearn.planner.plan_host_rotation`); the answer's ``meetings`` can
be edited and sent as is to ``POST /v1/cycles``, which validates them again."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.auth import Principal, Role, require
from api.deps import Pool
from api.problems import Problem
from api.routers.programmes import programme_row
from peerlearn.access import programme_not_found
from peerlearn.planner import DEFAULT_ROLE, PlanError, PlanPartner, PlanRequest, plan_host_rotation

router = APIRouter(prefix="/v1/cycles", tags=["cycles"])


class PlanIn(BaseModel):
    programme_id: str
    start_date: date
    end_date: date
    partners: list[str] | None = Field(
        default=None, description="Partner ids that take part; default every partner."
    )
    hosts_per_role: dict[str, int] = Field(
        default_factory=lambda: {"frontrunner": 2, "follower": 1, "organiser": 0},
        description="Visits each partner of a role hosts (frontrunner, follower, organiser).",
    )
    min_days_between: int = Field(default=14, ge=0, le=365)
    start_time: time = Field(default=time(9, 0), description="Local time in the programme's zone.")
    duration_minutes: int = Field(default=480, gt=0, le=20_160)
    kind: Literal["site_visit", "webinar", "kickoff", "wrap_up"] = "site_visit"


class PlannedMeeting(BaseModel):
    meeting_id: str
    kind: str
    host: str
    starts_at: datetime
    duration_minutes: int
    title: str


class PlanOut(BaseModel):
    programme_id: str
    time_zone: str
    meetings: list[PlannedMeeting]


@router.post(
    "/plan",
    response_model=PlanOut,
    responses={404: {"description": "Unknown programme"}, 422: {"description": "Cannot plan"}},
)
async def plan_cycle(
    body: PlanIn, pool: Pool, principal: Principal = require(Role.manager)
) -> PlanOut:
    """Propose who hosts when (each role's count, spread over the period, at
    least ``min_days_between`` days apart, at ``start_time`` in the programme's
    zone, only in the future). Nothing is stored or started."""
    principal.check_programme(body.programme_id)
    prog = await programme_row(pool, body.programme_id)
    if prog is None:
        raise programme_not_found(body.programme_id)
    known = {p["id"]: p for p in prog["partners"]}
    picked = body.partners if body.partners is not None else list(known)
    unknown = [p for p in picked if p not in known]
    if unknown:
        raise Problem(422, f"not partners of {body.programme_id!r}: {', '.join(unknown)}")
    req = PlanRequest(
        partners=[
            PlanPartner(p, known[p].get("role") or DEFAULT_ROLE, known[p].get("name", ""))
            for p in picked
        ],
        start=body.start_date,
        end=body.end_date,
        time_zone=prog["time_zone"],
        hosts_per_role=dict(body.hosts_per_role),
        min_days_between=body.min_days_between,
        start_time=body.start_time,
        duration_minutes=body.duration_minutes,
        kind=body.kind,
    )
    try:
        meetings = plan_host_rotation(req, datetime.now(UTC))
    except PlanError as exc:
        raise Problem(422, str(exc)) from exc
    return PlanOut(
        programme_id=body.programme_id,
        time_zone=prog["time_zone"],
        meetings=[PlannedMeeting(**m.__dict__) for m in meetings],
    )
