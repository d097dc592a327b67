"""The cycle's next-step planner: pure functions of the cycle's state.

The workflow asks :func:`next_step` what happens next and when, waits until
then (or until an update changes the state) and asks again. Nothing here reads
the clock, the workflow context or any I/O: the same state and ``now`` always
give the same step, which is what makes the workflow deterministic on replay
and lets the unit tier test the whole schedule logic without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from workflows.types import (
    CANCELLED,
    HELD,
    PHASE_KICKOFF,
    PHASE_MEETINGS,
    SCHEDULED,
    CyclePolicies,
    CycleState,
    MeetingState,
)

# Ties at the same instant resolve in this order.
ACTION_RANK = {
    "self_assessment": 0,
    "preparation_pack": 1,
    "meeting_held": 2,
    "reminder": 3,
    "notes_deadline": 4,
    "wrap_up": 5,
    "follow_up": 6,
}


@dataclass
class Step:
    """One thing the cycle does at ``at``; ``meeting`` is None for cycle-wide steps."""

    at: datetime
    action: str
    meeting: MeetingState | None = None


def overlap_reason(
    meetings: list[MeetingState], starts_at: datetime, ends_at: datetime, ignore: str | None = None
) -> str | None:
    """Why [starts_at, ends_at) clashes with a live meeting, or None.

    Half-open intervals: a meeting may start the instant another ends.
    Cancelled meetings and ``ignore`` (the meeting being moved) never clash.
    """
    for m in meetings:
        if m.plan.meeting_id == ignore or m.state == CANCELLED:
            continue
        if starts_at < m.plan.ends_at and m.plan.starts_at < ends_at:
            return (
                f"overlaps meeting {m.plan.meeting_id!r} "
                f"({m.plan.starts_at.isoformat()} to {m.plan.ends_at.isoformat()})"
            )
    return None


def reminder_times(m: MeetingState, pol: CyclePolicies) -> list[datetime]:
    """The meeting's reminder instants, earliest first (largest offset first)."""
    assert m.notes_due_at is not None
    offsets = sorted(pol.reminder_offsets, reverse=True)
    return [m.notes_due_at - o for o in offsets]


def notes_complete(m: MeetingState, pol: CyclePolicies) -> bool:
    """Enough notes are in: no more reminders, and the deadline closes quietly."""
    return len(m.note_ids) >= pol.min_notes_per_meeting


def meeting_steps(m: MeetingState, pol: CyclePolicies, self_assessment: bool) -> list[Step]:
    """Every step still ahead for one meeting (unordered)."""
    p = m.plan
    steps: list[Step] = []
    if m.state == SCHEDULED:
        if self_assessment and p.kind == "site_visit" and not m.self_assessment_sent:
            steps.append(Step(p.starts_at - pol.self_assessment_lead, "self_assessment", m))
        if not m.prep_sent:
            steps.append(Step(p.starts_at - pol.prep_pack_lead, "preparation_pack", m))
        steps.append(Step(p.starts_at, "meeting_held", m))
    elif m.state == HELD and not m.window_closed and m.notes_due_at is not None:
        times = reminder_times(m, pol)
        if not notes_complete(m, pol) and m.reminders_sent < len(times):
            steps.append(Step(times[m.reminders_sent], "reminder", m))
        steps.append(Step(m.notes_due_at, "notes_deadline", m))
    return steps


def next_step(state: CycleState, pol: CyclePolicies, now: datetime) -> Step:
    """The earliest step ahead (ties by :data:`ACTION_RANK`).

    While meetings remain it is one of theirs; once none does, the wrap-up is
    due at once; after the wrap-up only the follow-up is left.
    """
    if state.phase in (PHASE_KICKOFF, PHASE_MEETINGS):
        steps = [
            s for m in state.meetings for s in meeting_steps(m, pol, bool(state.self_assessment))
        ]
        if steps:
            return min(steps, key=lambda s: (s.at, ACTION_RANK[s.action]))
        return Step(now, "wrap_up")
    assert state.follow_up_at is not None
    return Step(state.follow_up_at, "follow_up")
