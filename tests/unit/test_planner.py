"""The cycle's next-step planner and the meeting-overlap rule, without a server."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from workflows.planning import Step, meeting_steps, next_step, overlap_reason, reminder_times
from workflows.types import (
    CANCELLED,
    HELD,
    PHASE_FOLLOW_UP,
    PHASE_MEETINGS,
    CyclePolicies,
    CycleState,
    MeetingPlan,
    MeetingState,
)

H = timedelta(hours=1)
D = timedelta(days=1)


def _m(mid: str, at: datetime, kind: str = "webinar", hours: float = 2, **kw: Any) -> MeetingState:
    plan = MeetingPlan(meeting_id=mid, kind=kind, starts_at=at, duration=timedelta(hours=hours))
    return MeetingState(plan=plan, **kw)


def _held(mid: str, at: datetime, due: datetime, **kw: Any) -> MeetingState:
    return _m(mid, at, state=HELD, held_at=at, notes_due_at=due, prep_sent=True, **kw)


# ---- overlap_reason -------------------------------------------------------------------------


def test_overlap_names_the_clashing_meeting(t0: datetime) -> None:
    reason = overlap_reason([_m("a", t0)], t0 + H, t0 + 3 * H)
    assert reason is not None and "'a'" in reason and t0.isoformat() in reason


def test_back_to_back_meetings_do_not_overlap(t0: datetime) -> None:
    assert overlap_reason([_m("a", t0, hours=2)], t0 + 2 * H, t0 + 3 * H) is None
    assert overlap_reason([_m("a", t0, hours=2)], t0 - H, t0) is None


def test_a_meeting_inside_another_overlaps(t0: datetime) -> None:
    assert overlap_reason([_m("a", t0, hours=8)], t0 + H, t0 + 2 * H) is not None
    assert overlap_reason([_m("a", t0 + H, hours=1)], t0, t0 + 8 * H) is not None


def test_cancelled_meetings_free_their_slot(t0: datetime) -> None:
    assert overlap_reason([_m("a", t0, state=CANCELLED)], t0, t0 + H) is None


def test_the_moved_meeting_never_clashes_with_itself(t0: datetime) -> None:
    ms = [_m("a", t0), _m("b", t0 + 5 * H)]
    assert overlap_reason(ms, t0 + H, t0 + 2 * H, ignore="a") is None
    assert overlap_reason(ms, t0 + 5 * H, t0 + 6 * H, ignore="a") is not None


# ---- next_step ------------------------------------------------------------------------------


def test_preparation_pack_comes_before_the_meeting(t0: datetime) -> None:
    pol = CyclePolicies(prep_pack_lead=timedelta(days=14))
    st = CycleState(meetings=[_m("kick", t0 + 30 * D)])
    step = next_step(st, pol, t0)
    assert (step.action, step.at) == ("preparation_pack", t0 + 16 * D)


def test_site_visit_asks_for_a_self_assessment_first_when_patched(t0: datetime) -> None:
    pol = CyclePolicies()
    visit = _m("v1", t0 + 30 * D, kind="site_visit")
    assert next_step(CycleState(meetings=[visit], self_assessment=True), pol, t0).action == (
        "self_assessment"
    )
    # a cycle started before the patch keeps the old schedule
    assert next_step(CycleState(meetings=[visit], self_assessment=False), pol, t0).action == (
        "preparation_pack"
    )


def test_meeting_is_held_at_its_start_once_the_pack_is_sent(t0: datetime) -> None:
    st = CycleState(meetings=[_m("kick", t0 + D, prep_sent=True)])
    step = next_step(st, CyclePolicies(), t0)
    assert (step.action, step.at, step.meeting) == ("meeting_held", t0 + D, st.meetings[0])


def test_ties_resolve_by_action_rank(t0: datetime) -> None:
    # the pack of one meeting and the start of another fall on the same instant
    pol = CyclePolicies(prep_pack_lead=D)
    st = CycleState(meetings=[_m("a", t0 + D, prep_sent=True), _m("b", t0 + 2 * D)])
    assert next_step(st, pol, t0).action == "preparation_pack"


def test_reminders_run_largest_offset_first_then_the_deadline(t0: datetime) -> None:
    pol = CyclePolicies(reminder_offsets=[D, 3 * D])
    due = t0 + 7 * D
    m = _held("a", t0, due)
    assert reminder_times(m, pol) == [due - 3 * D, due - D]
    assert next_step(CycleState(meetings=[m], phase=PHASE_MEETINGS), pol, t0).at == due - 3 * D
    m.reminders_sent = 2
    step = next_step(CycleState(meetings=[m], phase=PHASE_MEETINGS), pol, t0)
    assert (step.action, step.at) == ("notes_deadline", due)


def test_no_reminder_once_enough_notes_are_in(t0: datetime) -> None:
    pol = CyclePolicies(min_notes_per_meeting=1)
    m = _held("a", t0, t0 + 7 * D, note_ids=["n1"])
    assert [s.action for s in meeting_steps(m, pol, True)] == ["notes_deadline"]


def test_closed_window_and_cancelled_meetings_have_no_steps(t0: datetime) -> None:
    pol = CyclePolicies()
    assert meeting_steps(_held("a", t0, t0 + D, window_closed=True), pol, True) == []
    assert meeting_steps(_m("b", t0 + D, state=CANCELLED), pol, True) == []


def test_wrap_up_is_due_at_once_when_no_meeting_step_is_left(t0: datetime) -> None:
    st = CycleState(meetings=[_held("a", t0, t0 + D, window_closed=True)], phase=PHASE_MEETINGS)
    assert next_step(st, CyclePolicies(), t0 + 2 * D) == Step(t0 + 2 * D, "wrap_up")


def test_after_the_wrap_up_only_the_follow_up_is_left(t0: datetime) -> None:
    st = CycleState(phase=PHASE_FOLLOW_UP, follow_up_at=t0 + 90 * D)
    assert next_step(st, CyclePolicies(), t0) == Step(t0 + 90 * D, "follow_up")
