"""The host-rotation planner: propose a cycle's site visits, as a pure function.

A manager picks partners, a period and how often each role hosts (frontrunners
twice, followers once, organisers never, say); the planner proposes who hosts
when. It is pure (no clock, no I/O: ``now`` is an argument) so that the API
(``POST /v1/cycles/plan``) and the manager page propose the very same schedule
and the unit tier can test every rule without a server. It only proposes:
starting a cycle stays ``POST /v1/cycles``, which re-validates everything.

Rules:
- each partner hosts ``hosts_per_role[role]`` times; the order interleaves
  partners round by round so nobody hosts twice in a row when avoidable;
- meetings are spread evenly over the period, at least ``min_days_between``
  days apart (calendar days in the programme's time zone);
- every meeting starts at ``start_time`` local time in ``time_zone`` (so a
  DST change never moves a 09:00 visit to 08:00) and strictly after ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ROLES = ("frontrunner", "follower", "organiser")
DEFAULT_ROLE = "follower"


class PlanError(ValueError):
    """The request cannot be planned; the message says why (the API's 422 detail)."""


@dataclass(frozen=True)
class PlanPartner:
    id: str
    role: str = DEFAULT_ROLE
    name: str = ""


@dataclass(frozen=True)
class PlanRequest:
    partners: Sequence[PlanPartner]
    start: date
    end: date
    time_zone: str
    hosts_per_role: Mapping[str, int]
    min_days_between: int = 14
    start_time: time = time(9, 0)
    duration_minutes: int = 480
    kind: str = "site_visit"


@dataclass(frozen=True)
class ProposedMeeting:
    meeting_id: str
    kind: str
    host: str
    starts_at: datetime  # aware, in the programme's zone
    duration_minutes: int
    title: str


def host_order(partners: Sequence[PlanPartner], hosts_per_role: Mapping[str, int]) -> list[str]:
    """Who hosts, in order: round r holds every partner that hosts more than r
    times, in the given order; a round that would start with the host that just
    ended the previous one is rotated by one so no one hosts twice running."""
    counts = {p.id: hosts_per_role.get(p.role, 0) for p in partners}
    order: list[str] = []
    for r in range(max(counts.values(), default=0)):
        rnd = [p.id for p in partners if counts[p.id] > r]
        if order and len(rnd) > 1 and rnd[0] == order[-1]:
            rnd = rnd[1:] + rnd[:1]
        order.extend(rnd)
    return order


def _check(req: PlanRequest) -> ZoneInfo:
    try:
        zone = ZoneInfo(req.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise PlanError(f"unknown time zone {req.time_zone!r}") from exc
    if not req.partners:
        raise PlanError("pick at least one partner")
    ids = [p.id for p in req.partners]
    if len(set(ids)) != len(ids):
        raise PlanError("a partner is listed twice")
    for p in req.partners:
        if p.role not in ROLES:
            raise PlanError(f"partner {p.id!r} has unknown role {p.role!r} (one of {ROLES})")
    for role, n in req.hosts_per_role.items():
        if role not in ROLES:
            raise PlanError(f"hosts_per_role: unknown role {role!r} (one of {ROLES})")
        if n < 0 or n > 20:
            raise PlanError(f"hosts_per_role[{role!r}] must be between 0 and 20")
    if req.min_days_between < 0:
        raise PlanError("min_days_between must not be negative")
    if req.end < req.start:
        raise PlanError("the period ends before it starts")
    if req.duration_minutes <= 0:
        raise PlanError("duration_minutes must be positive")
    if req.duration_minutes > req.min_days_between * 1440:
        # meetings start at the same local hour: a longer one would overlap the next
        raise PlanError(
            f"meetings of {req.duration_minutes} minutes need min_days_between of at least"
            f" {-(-req.duration_minutes // 1440)}"
        )
    return zone


def plan_host_rotation(req: PlanRequest, now: datetime) -> list[ProposedMeeting]:
    """The proposed meetings, earliest first; :class:`PlanError` when the period
    (from the first day still ahead of ``now``) cannot hold them."""
    zone = _check(req)
    hosts = host_order(req.partners, req.hosts_per_role)
    if not hosts:
        raise PlanError("nobody hosts: give at least one picked role a host count above 0")
    first = req.start
    while datetime.combine(first, req.start_time, zone) <= now:
        first += timedelta(days=1)
    if first > req.end:
        raise PlanError(f"the period ends on {req.end.isoformat()}, which is not in the future")
    span = (req.end - first).days
    n = len(hosts)
    need = (n - 1) * req.min_days_between
    if need > span:
        raise PlanError(
            f"{n} meetings {req.min_days_between} days apart need {need} days, but"
            f" {first.isoformat()} to {req.end.isoformat()} has only {span}"
        )
    names = {p.id: p.name or p.id for p in req.partners}
    out: list[ProposedMeeting] = []
    for i, host in enumerate(hosts):
        # floor(i*span/(n-1)): consecutive gaps are >= floor(span/(n-1)) >= min_days_between
        offset = (i * span) // (n - 1) if n > 1 else 0
        day = first + timedelta(days=offset)
        out.append(
            ProposedMeeting(
                meeting_id=f"visit-{i + 1}",
                kind=req.kind,
                host=host,
                starts_at=datetime.combine(day, req.start_time, zone),
                duration_minutes=req.duration_minutes,
                title=f"Visit {i + 1}: {names[host]}",
            )
        )
    return out
