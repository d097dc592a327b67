"""The host-rotation planner (peerlearn/planner.py): who hosts when, without a server."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from peerlearn.planner import (
    PlanError,
    PlanPartner,
    PlanRequest,
    host_order,
    plan_host_rotation,
)

NOW = datetime(2031, 1, 10, 12, 0, tzinfo=UTC)
PARTNERS = [
    PlanPartner("vaxa", "frontrunner"),
    PlanPartner("lodz", "frontrunner"),
    PlanPartner("umea", "follower"),
    PlanPartner("graz", "follower"),
    PlanPartner("secretariat", "organiser"),
]
COUNTS = {"frontrunner": 2, "follower": 1, "organiser": 0}


def _req(**kw: object) -> PlanRequest:
    base: dict[str, object] = {
        "partners": PARTNERS,
        "start": date(2031, 2, 1),
        "end": date(2031, 12, 1),
        "time_zone": "Europe/Stockholm",
        "hosts_per_role": COUNTS,
        "min_days_between": 21,
    }
    base.update(kw)
    return PlanRequest(**base)  # type: ignore[arg-type]


def test_each_role_hosts_its_count_and_nobody_twice_running() -> None:
    order = host_order(PARTNERS, COUNTS)
    assert sorted(order) == sorted(["vaxa", "vaxa", "lodz", "lodz", "umea", "graz"])
    assert "secretariat" not in order
    assert all(a != b for a, b in zip(order, order[1:], strict=False))


def test_rounds_rotate_when_a_round_would_repeat_the_last_host() -> None:
    only = [PlanPartner("a", "frontrunner"), PlanPartner("b", "follower")]
    assert host_order(only, {"frontrunner": 3, "follower": 3}) == ["a", "b", "a", "b", "a", "b"]
    one = [PlanPartner("a", "frontrunner"), PlanPartner("b", "frontrunner"), PlanPartner("c")]
    order = host_order(one, {"frontrunner": 2, "follower": 1})
    assert order == ["a", "b", "c", "a", "b"]


def test_meetings_are_apart_inside_the_period_at_local_nine() -> None:
    plan = plan_host_rotation(_req(), NOW)
    assert len(plan) == 6
    days = [m.starts_at.date() for m in plan]
    assert days[0] == date(2031, 2, 1) and days[-1] == date(2031, 12, 1)
    assert all((b - a).days >= 21 for a, b in zip(days, days[1:], strict=False))
    # 09:00 in Stockholm both in winter (UTC+1) and in summer (UTC+2): DST respected
    assert {m.starts_at.time() for m in plan} == {time(9, 0)}
    offsets = {m.starts_at.utcoffset() for m in plan}
    assert len(offsets) == 2
    assert [m.meeting_id for m in plan] == [f"visit-{i}" for i in range(1, 7)]
    assert all(m.kind == "site_visit" and m.host for m in plan)


def test_dates_only_in_the_future() -> None:
    now = datetime(2031, 3, 1, 9, 30, tzinfo=UTC)  # 10:30 in Stockholm: today's 09:00 has passed
    plan = plan_host_rotation(_req(), now)
    assert plan[0].starts_at.date() == date(2031, 3, 2)
    assert all(m.starts_at > now for m in plan)
    with pytest.raises(PlanError, match="not in the future"):
        plan_host_rotation(_req(end=date(2031, 2, 28)), now)


def test_too_short_a_period_says_how_many_days_are_needed() -> None:
    with pytest.raises(PlanError, match=r"6 meetings 21 days apart need 105 days"):
        plan_host_rotation(_req(end=date(2031, 4, 1)), NOW)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"time_zone": "Mars/Olympus"}, "unknown time zone"),
        ({"hosts_per_role": {"captain": 1}}, "unknown role"),
        ({"hosts_per_role": {"frontrunner": 0, "follower": 0}}, "nobody hosts"),
        ({"partners": []}, "at least one partner"),
        ({"partners": [PlanPartner("a"), PlanPartner("a")]}, "listed twice"),
        ({"end": date(2031, 1, 1)}, "ends before it starts"),
        ({"min_days_between": 0}, "min_days_between of at least 1"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(kw: dict[str, object], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        plan_host_rotation(_req(**kw), NOW)


def test_same_input_same_plan() -> None:
    assert plan_host_rotation(_req(), NOW) == plan_host_rotation(_req(), NOW)
