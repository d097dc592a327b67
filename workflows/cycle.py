"""PeerLearningCycle: one durable workflow per peer-learning cycle.

The workflow owns the cycle's clock and its decisions; it never touches the
database itself. Every state change is first applied to the in-memory
:class:`CycleState` (so validators running concurrently see it at once) and
then appended as one domain event through the ``append_cycle_event`` activity,
under a workflow-local lock so the stream's order is the workflow's order. The
idempotency key of each event is ``<workflow id>:<seq>``, ``seq`` being carried
across continue-as-new, so a retried activity or a replayed workflow task never
writes twice.

The main loop computes the next deadline from the state (preparation pack,
meeting time, reminder, notes deadline, wrap-up, follow-up) and waits for it
with ``wait_condition(..., timeout=...)``; every update or signal wakes it, so
a moved meeting or a pause re-plans the timers instead of leaving stale ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from peerlearn.events import EventType
from peerlearn.text_rules import describe_forbidden, strip_forbidden
from workflows.mining_contract import (
    ASSIGN_NOTE_THEMES,
    AssignNoteThemesInput,
    AssignNoteThemesOutput,
)
from workflows.planning import (
    Step,
    next_step,
    notes_complete,
    overlap_reason,
    reminder_times,
)
from workflows.types import (
    APPEND_CYCLE_EVENT,
    BUILD_WRAPUP_REPORT,
    CANCELLED,
    DELIVER_OUTBOX,
    HELD,
    MEETING_KINDS,
    PHASE_CANCELLED,
    PHASE_COMPLETED,
    PHASE_FOLLOW_UP,
    PHASE_KICKOFF,
    PHASE_MEETINGS,
    PHASE_WRAP_UP,
    SCHEDULED,
    STATUS_QUERY,
    SUBMIT_NOTE,
    WORKFLOW_NAME,
    AddMeetingInput,
    AppendEventInput,
    AppendEventOutput,
    CancelCycleInput,
    CancelMeetingInput,
    ChangeOutput,
    CycleInput,
    CycleResult,
    CycleState,
    CycleStatus,
    Deadline,
    DeliverOutboxInput,
    DeliverOutboxOutput,
    MarkHeldInput,
    MeetingPlan,
    MeetingState,
    MeetingStatus,
    MoveMeetingInput,
    PauseInput,
    SubmitNoteActivityInput,
    SubmitNoteInput,
    SubmitNoteOutput,
    SwapHostInput,
    WrapUpInput,
    WrapUpOutput,
)

# Patch ids. Never rename or remove one while a cycle started before it may run.
SELF_ASSESSMENT_PATCH = "host-self-assessment-request"

_APPEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
# No attempt cap: every acknowledged note gets its statements. The activity
# raises non-retryable (and records NoteRejected) only when no retry can help.
# Storing a note: a short retry window (the caller and any cancel wait on it);
# storage refusals the activity marks non-retryable end it at once.
_NOTE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=10)
)
_NOTE_STORE_DEADLINE = timedelta(minutes=2)
_MINING_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
)
_DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(seconds=60),
    maximum_attempts=5,
)


def rejected(reason: str) -> ApplicationError:
    """A validator's refusal; the API turns it into 409 with this reason."""
    return ApplicationError(reason, type="Rejected", non_retryable=True)


def invalid(reason: str) -> ApplicationError:
    """Input no retry can fix (the API answers 422 with this reason)."""
    return ApplicationError(reason, type="Invalid", non_retryable=True)


def unavailable(reason: str) -> ApplicationError:
    """A transient failure the caller should retry (the API answers 503)."""
    return ApplicationError(reason, type="Unavailable", non_retryable=True)


def not_found(reason: str) -> ApplicationError:
    return ApplicationError(reason, type="NotFound", non_retryable=True)


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt is not None else None


def plan_payload(p: MeetingPlan) -> dict[str, Any]:
    return {
        "meeting_id": p.meeting_id,
        "kind": p.kind,
        "title": p.title,
        "host": p.host,
        "format": p.format,
        "starts_at": _iso(p.starts_at),
        "ends_at": _iso(p.ends_at),
        "topics": list(p.topics),
        "target_groups": list(p.target_groups),
        "participants": list(p.participants),
    }


@workflow.defn(name=WORKFLOW_NAME)
class PeerLearningCycle:
    @workflow.init
    def __init__(self, inp: CycleInput) -> None:
        self.inp = inp
        self.pol = inp.policies
        if inp.state is not None:
            self.state = inp.state
        else:
            ordered = sorted(inp.meetings, key=lambda p: p.starts_at)
            self.state = CycleState(meetings=[MeetingState(plan=p) for p in ordered])
        self._lock = asyncio.Lock()
        self._wake = False
        self._held_signals: list[MarkHeldInput] = []
        self._cancel_requested: str | None = None
        self._inflight_notes: dict[str, str] = {}
        self._background = 0  # mining and delivery tasks still running
        self._mining: dict[str, workflow.ActivityHandle[AssignNoteThemesOutput]] = {}
        self._delivering = False
        self._deliver_again = False

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, inp: CycleInput) -> CycleResult:
        if self.state.self_assessment is None:
            self.state.self_assessment = workflow.patched(SELF_ASSESSMENT_PATCH)
        if inp.state is None:
            await self._append(
                EventType.CYCLE_STARTED,
                {
                    "programme_id": inp.programme_id,
                    "workflow_id": workflow.info().workflow_id,
                    "title": inp.title,
                    "time_zone": inp.time_zone,
                    "partners": list(inp.partners),
                    "ends_at": _iso(inp.ends_at),
                    "policies": self._policies_payload(),
                    "meetings": [plan_payload(m.plan) for m in self.state.meetings],
                },
            )

        while True:
            if self._cancel_requested is not None:
                return await self._cancel(self._cancel_requested)
            while self._held_signals:
                await self._mark_held(self._held_signals.pop(0))
            if self.state.paused:
                await workflow.wait_condition(
                    lambda: (
                        not self.state.paused
                        or self._cancel_requested is not None
                        or bool(self._held_signals)
                    )
                )
                continue
            if self._should_continue_as_new():
                await workflow.wait_condition(
                    lambda: workflow.all_handlers_finished() and self._background == 0
                )
                if self._held_signals or self._cancel_requested is not None:
                    continue
                self.state.runs += 1
                workflow.continue_as_new(replace(self.inp, state=self.state))

            now = workflow.now()
            step = self._next_step(now)
            if step.at <= now:
                if step.action == "follow_up":
                    return await self._complete()
                await self._perform(step, now)
                continue
            self._wake = False
            with contextlib.suppress(TimeoutError):  # the deadline came: loop and act
                await workflow.wait_condition(
                    lambda: self._wake, timeout=step.at - now, timeout_summary=step.action
                )

    # ------------------------------------------------------------ planning

    def _reminder_times(self, m: MeetingState) -> list[datetime]:
        return reminder_times(m, self.pol)

    def _notes_complete(self, m: MeetingState) -> bool:
        return notes_complete(m, self.pol)

    def _next_step(self, now: datetime) -> Step:
        return next_step(self.state, self.pol, now)

    def _should_continue_as_new(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self.pol.continue_as_new_after
        )

    # ------------------------------------------------------------ actions

    async def _perform(self, step: Step, now: datetime) -> None:
        m = step.meeting
        if step.action == "wrap_up":
            await self._wrap_up(now)
            return
        assert m is not None
        mid = m.plan.meeting_id
        if step.action == "self_assessment":
            m.self_assessment_sent = True
            await self._append(
                EventType.SELF_ASSESSMENT_REQUESTED,
                {"meeting_id": mid, "host": m.plan.host, "due_at": _iso(m.plan.starts_at)},
            )
        elif step.action == "preparation_pack":
            m.prep_sent = True
            await self._append(
                EventType.PREPARATION_PACK_SENT, {**plan_payload(m.plan), "meeting_id": mid}
            )
        elif step.action == "meeting_held":
            await self._hold(m, m.plan.starts_at, marked=False)
        elif step.action == "reminder":
            # Coalesce reminders whose times all passed (e.g. after a pause).
            times = self._reminder_times(m)
            m.reminders_sent = max(m.reminders_sent + 1, sum(1 for t in times if t <= now))
            await self._append(
                EventType.REMINDER_SENT,
                {
                    "meeting_id": mid,
                    "reminder": m.reminders_sent,
                    "notes_due_at": _iso(m.notes_due_at),
                    "note_count": len(m.note_ids),
                },
            )
        elif step.action == "notes_deadline":
            m.window_closed = True
            if self._notes_complete(m):
                await self._append(
                    EventType.NOTE_WINDOW_CLOSED, {"meeting_id": mid, "note_count": len(m.note_ids)}
                )
            else:
                m.escalated = True
                await self._append(
                    EventType.NOTES_OVERDUE,
                    {
                        "meeting_id": mid,
                        "notes_due_at": _iso(m.notes_due_at),
                        "note_count": len(m.note_ids),
                        "expected": self.pol.min_notes_per_meeting,
                    },
                )

    async def _hold(self, m: MeetingState, held_at: datetime, *, marked: bool) -> None:
        m.state = HELD
        m.held_at = held_at
        m.notes_due_at = held_at + self.pol.notes_due_after
        # Reminders whose time came before the meeting make no sense: skip them.
        m.reminders_sent = sum(1 for t in self._reminder_times(m) if t <= held_at)
        if self.state.phase == PHASE_KICKOFF:
            self.state.phase = PHASE_MEETINGS
        await self._append(
            EventType.MEETING_HELD,
            {
                "meeting_id": m.plan.meeting_id,
                "held_at": _iso(held_at),
                "notes_due_at": _iso(m.notes_due_at),
                "marked": marked,
            },
        )

    async def _mark_held(self, sig: MarkHeldInput) -> None:
        m = self._find(sig.meeting_id)
        if m is None or m.state != SCHEDULED:
            workflow.logger.warning("mark held ignored for %s", sig.meeting_id)
            return
        now = workflow.now()
        held_at = sig.held_at if sig.held_at is not None and sig.held_at <= now else now
        await self._hold(m, held_at, marked=True)

    async def _wrap_up(self, now: datetime) -> None:
        self.state.phase = PHASE_WRAP_UP
        # Themes of late notes belong in the report: let mining finish first
        # (unless a cancel came: it is recorded whatever else is pending).
        await workflow.wait_condition(
            lambda: self._background == 0 or self._cancel_requested is not None
        )
        if self._cancel_requested is not None:
            return
        follow_up_at = workflow.now() + self.pol.follow_up_after
        self.state.follow_up_at = follow_up_at
        self.state.phase = PHASE_FOLLOW_UP
        async with self._lock:
            self.state.seq += 1
            build = workflow.start_activity(
                BUILD_WRAPUP_REPORT,
                WrapUpInput(
                    cycle_id=self.inp.cycle_id,
                    idempotency_key=self._key(),
                    occurred_at=workflow.now(),
                    follow_up_at=follow_up_at,
                    phase=self.state.phase,
                ),
                result_type=WrapUpOutput,
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=_APPEND_RETRY,
            )
            # Retried without limit, but a cancel does not wait behind it.
            await workflow.wait_condition(
                lambda: build.done() or self._cancel_requested is not None
            )
            if not build.done():
                build.cancel()
                with contextlib.suppress(ActivityError, asyncio.CancelledError):
                    await build
                return
            out: WrapUpOutput = build.result()
        self.state.report_id = out.report_id
        self.state.wrapup_published_at = workflow.now()
        if out.outbox_ids:
            self._kick_delivery()

    async def _complete(self) -> CycleResult:
        await self._append(EventType.FOLLOW_UP_DUE, {"report_id": self.state.report_id})
        await workflow.wait_condition(
            lambda: self._background == 0 and workflow.all_handlers_finished()
        )
        self.state.phase = PHASE_COMPLETED
        await self._append(EventType.CYCLE_COMPLETED, {"report_id": self.state.report_id})
        return CycleResult(
            cycle_id=self.inp.cycle_id,
            status="completed",
            events=self.state.seq,
            report_id=self.state.report_id,
        )

    async def _cancel(self, reason: str) -> CycleResult:
        self.state.phase = PHASE_CANCELLED
        self.state.cancel_reason = reason
        # Mining retries without limit: a cancel must not wait on it. The notes
        # stay stored; the note reconciliation mines them later.
        for pending in list(self._mining.values()):
            pending.cancel()
        await workflow.wait_condition(
            lambda: self._background == 0 and workflow.all_handlers_finished()
        )
        await self._append(EventType.CYCLE_CANCELLED, {"reason": reason})
        return CycleResult(cycle_id=self.inp.cycle_id, status="cancelled", events=self.state.seq)

    # ------------------------------------------------------------ effects

    def _key(self) -> str:
        return f"{workflow.info().workflow_id}:{self.state.seq}"

    async def _append(self, type_: EventType, payload: dict[str, Any]) -> AppendEventOutput:
        """Append one event; retried without limit (a database outage must
        delay the cycle, never lose an event)."""
        async with self._lock:
            self.state.seq += 1
            out: AppendEventOutput = await workflow.execute_activity(
                APPEND_CYCLE_EVENT,
                AppendEventInput(
                    stream_id=self.inp.cycle_id,
                    idempotency_key=self._key(),
                    type=type_,
                    payload={**payload, "phase": self.state.phase},
                    occurred_at=workflow.now(),
                ),
                result_type=AppendEventOutput,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_APPEND_RETRY,
            )
        if out.outbox_ids:
            self._kick_delivery()
        return out

    def _kick_delivery(self) -> None:
        """Deliver outbox rows in the background: a slow webhook must not hold
        the cycle's clock. One delivery task at a time; it loops while new
        rows arrive."""
        if self._delivering:
            self._deliver_again = True
            return
        self._delivering = True
        self._background += 1
        asyncio.create_task(self._deliver_loop())

    async def _deliver_loop(self) -> None:
        try:
            while True:
                self._deliver_again = False
                try:
                    await workflow.execute_activity(
                        DELIVER_OUTBOX,
                        DeliverOutboxInput(cycle_id=self.inp.cycle_id),
                        result_type=DeliverOutboxOutput,
                        start_to_close_timeout=timedelta(seconds=60),
                        retry_policy=_DELIVERY_RETRY,
                    )
                except ActivityError as exc:  # rows stay undelivered; the next run retries them
                    workflow.logger.warning("outbox delivery gave up for now: %s", exc)
                if not self._deliver_again:
                    return
        finally:
            self._delivering = False
            self._background -= 1

    async def _mine(self, note_id: str, meeting_id: str) -> None:
        try:
            try:
                mining = workflow.start_activity(
                    ASSIGN_NOTE_THEMES,
                    AssignNoteThemesInput(
                        note_id=note_id, cycle_id=self.inp.cycle_id, meeting_id=meeting_id
                    ),
                    result_type=AssignNoteThemesOutput,
                    start_to_close_timeout=timedelta(minutes=5),
                    # the activity heartbeats every 5 s: a killed worker is noticed fast
                    heartbeat_timeout=timedelta(seconds=60),
                    retry_policy=_MINING_RETRY,
                )
                self._mining[note_id] = mining
                try:
                    out: AssignNoteThemesOutput = await mining
                finally:
                    self._mining.pop(note_id, None)
            except ActivityError as exc:  # refused for good (NoteRejected): the cycle goes on
                workflow.logger.warning("theme assignment failed for note %s: %s", note_id, exc)
                return
            await self._append(
                EventType.THEMES_UPDATED,
                {
                    "meeting_id": meeting_id,
                    "note_id": note_id,
                    "theme_ids": list(out.theme_ids),
                    "statement_count": out.statement_count,
                    "unassigned": out.unassigned,
                },
            )
        finally:
            self._background -= 1

    def _policies_payload(self) -> dict[str, Any]:
        p = self.pol
        return {
            "notes_due_after_s": p.notes_due_after.total_seconds(),
            "reminder_offsets_s": [o.total_seconds() for o in p.reminder_offsets],
            "prep_pack_lead_s": p.prep_pack_lead.total_seconds(),
            "self_assessment_lead_s": p.self_assessment_lead.total_seconds(),
            "follow_up_after_s": p.follow_up_after.total_seconds(),
            "min_notes_per_meeting": p.min_notes_per_meeting,
        }

    # ------------------------------------------------------------ validation

    def _find(self, meeting_id: str) -> MeetingState | None:
        for m in self.state.meetings:
            if m.plan.meeting_id == meeting_id:
                return m
        return None

    def _check_running(self) -> None:
        if self._cancel_requested is not None or self.state.phase == PHASE_CANCELLED:
            reason = self._cancel_requested or self.state.cancel_reason
            raise rejected(f"cycle {self.inp.cycle_id!r} is cancelled ({reason})")
        if self.state.phase == PHASE_COMPLETED:
            raise rejected(f"cycle {self.inp.cycle_id!r} is completed")

    def _check_schedule_open(self) -> None:
        self._check_running()
        if self.state.phase in (PHASE_WRAP_UP, PHASE_FOLLOW_UP):
            raise rejected(
                f"cycle {self.inp.cycle_id!r} is in {self.state.phase}; its schedule is closed"
            )

    def _changeable(self, meeting_id: str) -> MeetingState:
        self._check_schedule_open()
        m = self._find(meeting_id)
        if m is None:
            raise not_found(f"meeting {meeting_id!r} is not part of cycle {self.inp.cycle_id!r}")
        if m.state == HELD:
            raise rejected(f"meeting {meeting_id!r} was already held; it can no longer change")
        if m.state == CANCELLED:
            raise rejected(f"meeting {meeting_id!r} is cancelled")
        return m

    def _check_slot(self, starts_at: datetime, ends_at: datetime, ignore: str | None) -> None:
        now = workflow.now()
        if starts_at <= now:
            raise rejected(
                f"starts_at {starts_at.isoformat()} is not in the future (now {now.isoformat()})"
            )
        if ends_at > self.inp.ends_at:
            raise rejected(
                f"meeting would end at {ends_at.isoformat()}, after the cycle ends "
                f"({self.inp.ends_at.isoformat()})"
            )
        clash = overlap_reason(self.state.meetings, starts_at, ends_at, ignore)
        if clash:
            raise rejected(clash)

    def _check_texts(self, **fields: str | None) -> None:
        """Free text of an update must be storable: every event is appended
        with unlimited retries, so one that can never be stored would hold the
        cycle's event lock for good."""
        for name, value in fields.items():
            problem = describe_forbidden(value, what=name) if value else None
            if problem is not None:
                raise invalid(problem)

    def _check_host(self, host: str | None, kind: str) -> None:
        if host is None:
            if kind == "site_visit":
                raise rejected("a site visit needs a host partner")
            return
        if host not in self.inp.partners:
            raise rejected(f"host {host!r} is not a partner of programme {self.inp.programme_id!r}")

    # ------------------------------------------------------------ updates

    @workflow.update(name="move_meeting")
    async def move_meeting(self, inp: MoveMeetingInput) -> ChangeOutput:
        m = self._changeable(inp.meeting_id)
        old = m.plan.starts_at
        m.plan = replace(m.plan, starts_at=inp.starts_at, duration=inp.duration or m.plan.duration)
        self.state.meetings.sort(key=lambda x: x.plan.starts_at)
        self._wake = True
        out = await self._append(
            EventType.MEETING_MOVED,
            {
                "meeting_id": inp.meeting_id,
                "from": _iso(old),
                "starts_at": _iso(m.plan.starts_at),
                "ends_at": _iso(m.plan.ends_at),
            },
        )
        return ChangeOutput(EventType.MEETING_MOVED, out.version)

    @move_meeting.validator
    def _validate_move(self, inp: MoveMeetingInput) -> None:
        m = self._changeable(inp.meeting_id)
        duration = inp.duration or m.plan.duration
        self._check_slot(inp.starts_at, inp.starts_at + duration, ignore=inp.meeting_id)

    @workflow.update(name="swap_host")
    async def swap_host(self, inp: SwapHostInput) -> ChangeOutput:
        m = self._changeable(inp.meeting_id)
        old = m.plan.host
        m.plan = replace(m.plan, host=inp.host)
        m.self_assessment_sent = False  # the new host owes its own self-assessment
        self._wake = True
        out = await self._append(
            EventType.HOST_SWAPPED, {"meeting_id": inp.meeting_id, "from": old, "host": inp.host}
        )
        return ChangeOutput(EventType.HOST_SWAPPED, out.version)

    @swap_host.validator
    def _validate_swap(self, inp: SwapHostInput) -> None:
        m = self._changeable(inp.meeting_id)
        self._check_host(inp.host, m.plan.kind)
        if m.plan.host == inp.host:
            raise rejected(f"{inp.host!r} already hosts meeting {inp.meeting_id!r}")

    @workflow.update(name="add_meeting")
    async def add_meeting(self, inp: AddMeetingInput) -> ChangeOutput:
        self.state.meetings.append(MeetingState(plan=inp.meeting))
        self.state.meetings.sort(key=lambda x: x.plan.starts_at)
        self._wake = True
        out = await self._append(EventType.MEETING_SCHEDULED, plan_payload(inp.meeting))
        return ChangeOutput(EventType.MEETING_SCHEDULED, out.version)

    @add_meeting.validator
    def _validate_add(self, inp: AddMeetingInput) -> None:
        self._check_schedule_open()
        p = inp.meeting
        self._check_texts(
            title=p.title, format=p.format, **{f"topics[{i}]": t for i, t in enumerate(p.topics)}
        )
        self._check_texts(
            **{f"target_groups[{i}]": t for i, t in enumerate(p.target_groups)},
            **{f"participants[{i}]": t for i, t in enumerate(p.participants)},
        )
        if self._find(p.meeting_id) is not None:
            raise rejected(f"meeting id {p.meeting_id!r} is already used in this cycle")
        if p.kind not in MEETING_KINDS:
            raise rejected(f"unknown meeting kind {p.kind!r}")
        self._check_host(p.host, p.kind)
        self._check_slot(p.starts_at, p.ends_at, ignore=None)

    @workflow.update(name="cancel_meeting")
    async def cancel_meeting(self, inp: CancelMeetingInput) -> ChangeOutput:
        m = self._changeable(inp.meeting_id)
        m.state = CANCELLED
        m.cancel_reason = inp.reason
        self._wake = True
        out = await self._append(
            EventType.MEETING_CANCELLED, {"meeting_id": inp.meeting_id, "reason": inp.reason}
        )
        return ChangeOutput(EventType.MEETING_CANCELLED, out.version)

    @cancel_meeting.validator
    def _validate_cancel_meeting(self, inp: CancelMeetingInput) -> None:
        self._changeable(inp.meeting_id)
        self._check_texts(reason=inp.reason)

    @workflow.update(name="submit_notes")
    async def submit_notes(self, inp: SubmitNoteInput) -> SubmitNoteOutput:
        known = self.state.notes_by_key.get(inp.client_key)
        if known is not None:
            return SubmitNoteOutput(note_id=known, duplicate=True)
        if inp.client_key in self._inflight_notes:  # same key, concurrent call
            await workflow.wait_condition(lambda: inp.client_key not in self._inflight_notes)
            if inp.client_key not in self.state.notes_by_key:
                raise unavailable("the first submission with this key failed; send it again")
            return SubmitNoteOutput(note_id=self.state.notes_by_key[inp.client_key], duplicate=True)
        # A sealed submission is bound to the id the API proposed (the sealing
        # key's); older histories and unsealed callers get a drawn one.
        note_id = inp.note_id or str(workflow.uuid4())
        self._inflight_notes[inp.client_key] = note_id
        m = self._find(inp.meeting_id)
        assert m is not None
        # Notes after the window closed are still welcome, but flagged and counted.
        late = m.window_closed
        failure: ActivityError | None = None
        async with self._lock:
            self.state.seq += 1
            try:
                stored: SubmitNoteOutput = await workflow.execute_activity(
                    SUBMIT_NOTE,
                    SubmitNoteActivityInput(
                        cycle_id=self.inp.cycle_id,
                        idempotency_key=self._key(),
                        note_id=note_id,
                        occurred_at=workflow.now(),
                        note=inp,
                        phase=self.state.phase,
                        late=late,
                    ),
                    result_type=SubmitNoteOutput,
                    start_to_close_timeout=timedelta(seconds=30),
                    # Bounded: the caller waits on this update, and so does a cancel.
                    schedule_to_close_timeout=_NOTE_STORE_DEADLINE,
                    retry_policy=_NOTE_RETRY,
                )
            except ActivityError as exc:
                failure = exc
        if failure is not None:
            del self._inflight_notes[inp.client_key]
            self._wake = True
            return await self._note_failed(inp, failure)
        self.state.notes_by_key[inp.client_key] = stored.note_id
        del self._inflight_notes[inp.client_key]
        if stored.note_id not in m.note_ids:
            m.note_ids.append(stored.note_id)
            if late:
                m.late_note_ids.append(stored.note_id)
        self._wake = True
        if not stored.duplicate:
            self._background += 1
            asyncio.create_task(self._mine(stored.note_id, inp.meeting_id))
        return stored

    async def _note_failed(self, inp: SubmitNoteInput, failure: ActivityError) -> SubmitNoteOutput:
        """Storing a note failed: never wedge the cycle over it.

        A failure no retry can fix (the activity said non-retryable) is recorded
        as ``NoteRejected`` with its reason and answered as invalid input; one
        that merely ran out of time is answered as unavailable (the client sends
        the same key again). Either way the update ends and the cycle goes on.
        """
        cause = failure.cause
        if isinstance(cause, ApplicationError) and cause.non_retryable:
            reason = cause.message
            await self._append(
                EventType.NOTE_REJECTED,
                {
                    "meeting_id": inp.meeting_id,
                    "client_key": inp.client_key,
                    "author_organisation": inp.author_organisation,
                    "language": inp.language,
                    "format": inp.format,
                    "reason": reason,
                },
            )
            raise invalid(f"the note was not stored: {reason}")
        workflow.logger.warning("storing note %s gave up for now: %s", inp.client_key, failure)
        raise unavailable(
            "the note could not be stored in time; send it again with the same Idempotency-Key"
        )

    @submit_notes.validator
    def _validate_notes(self, inp: SubmitNoteInput) -> None:
        self._check_running()
        if inp.client_key in self.state.notes_by_key or inp.client_key in self._inflight_notes:
            return  # a replay of an accepted submission: answer it again
        m = self._find(inp.meeting_id)
        if m is None:
            raise not_found(
                f"meeting {inp.meeting_id!r} is not part of cycle {self.inp.cycle_id!r}"
            )
        if m.state == CANCELLED:
            raise rejected(f"meeting {inp.meeting_id!r} is cancelled; it takes no notes")
        if m.state != HELD:
            raise rejected(
                f"meeting {inp.meeting_id!r} has not been held yet; notes open once it is"
            )
        if inp.text_sealed is not None:
            # Sealed by the API after its text checks; the store activity opens
            # it and refuses (non-retryably) what does not open.
            if not inp.note_id or not inp.text_sealed or inp.text:
                raise invalid("a sealed note needs its note_id and only text_sealed")
            if inp.note_id in self._inflight_notes.values() or any(
                inp.note_id in m.note_ids for m in self.state.meetings
            ):
                raise invalid(f"note id {inp.note_id!r} is already taken")
            return
        if not inp.text.strip():
            raise rejected("the note is empty")
        problem = describe_forbidden(inp.text)
        if problem is not None:  # never accept what storage can never hold
            raise invalid(problem)

    @workflow.update(name="pause")
    async def pause(self, inp: PauseInput) -> ChangeOutput:
        self.state.paused = True
        self.state.paused_at = workflow.now()
        self._wake = True
        out = await self._append(EventType.CYCLE_PAUSED, {"reason": inp.reason})
        return ChangeOutput(EventType.CYCLE_PAUSED, out.version)

    @pause.validator
    def _validate_pause(self, inp: PauseInput) -> None:
        self._check_running()
        self._check_texts(reason=inp.reason)
        if self.state.paused:
            raise rejected(f"cycle {self.inp.cycle_id!r} is already paused")

    @workflow.update(name="resume")
    async def resume(self, inp: PauseInput) -> ChangeOutput:
        now = workflow.now()
        paused_for = now - (self.state.paused_at or now)
        # Relative timers hold while paused: open note windows and the follow-up
        # move out by the pause; meetings keep their calendar dates.
        shifted: dict[str, str | None] = {}
        for m in self.state.meetings:
            if m.state == HELD and not m.window_closed and m.notes_due_at is not None:
                m.notes_due_at = m.notes_due_at + paused_for
                shifted[m.plan.meeting_id] = _iso(m.notes_due_at)
        if self.state.follow_up_at is not None:
            self.state.follow_up_at = self.state.follow_up_at + paused_for
        self.state.paused = False
        self.state.paused_at = None
        self._wake = True
        out = await self._append(
            EventType.CYCLE_RESUMED,
            {
                "reason": inp.reason,
                "paused_for_s": paused_for.total_seconds(),
                "notes_due_at": shifted,
                "follow_up_at": _iso(self.state.follow_up_at),
            },
        )
        return ChangeOutput(EventType.CYCLE_RESUMED, out.version)

    @resume.validator
    def _validate_resume(self, inp: PauseInput) -> None:
        self._check_running()
        self._check_texts(reason=inp.reason)
        if not self.state.paused:
            raise rejected(f"cycle {self.inp.cycle_id!r} is not paused")

    # ------------------------------------------------------------ signals

    @workflow.signal(name="mark_held")
    def mark_held(self, inp: MarkHeldInput) -> None:
        self._held_signals.append(inp)
        self._wake = True

    @workflow.signal(name="cancel_cycle")
    def cancel_cycle(self, inp: CancelCycleInput) -> None:
        if self.state.phase not in (PHASE_COMPLETED, PHASE_CANCELLED):
            # A signal cannot be refused: drop what storage could never hold.
            self._cancel_requested = strip_forbidden(inp.reason) or "cancelled"
            self._wake = True

    # ------------------------------------------------------------ query

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> CycleStatus:
        now = workflow.now()
        st = self.state
        if st.phase == PHASE_CANCELLED or self._cancel_requested is not None:
            status = "cancelled"
        elif st.phase == PHASE_COMPLETED:
            status = "completed"
        elif st.paused:
            status = "paused"
        else:
            status = "running"
        nxt: Deadline | None = None
        pending: list[Deadline] = []
        if status in ("running", "paused"):
            step = self._next_step(now)
            nxt = Deadline(
                at=step.at,
                action=step.action,
                meeting_id=step.meeting.plan.meeting_id if step.meeting else None,
            )
            for m in st.meetings:
                if m.state == HELD and not m.window_closed and not self._notes_complete(m):
                    for t in self._reminder_times(m)[m.reminders_sent :]:
                        pending.append(
                            Deadline(at=t, action="reminder", meeting_id=m.plan.meeting_id)
                        )
        return CycleStatus(
            cycle_id=self.inp.cycle_id,
            programme_id=self.inp.programme_id,
            title=self.inp.title,
            phase=st.phase,
            status=status,
            time_zone=self.inp.time_zone,
            ends_at=self.inp.ends_at,
            meetings=[
                MeetingStatus(
                    meeting_id=m.plan.meeting_id,
                    kind=m.plan.kind,
                    title=m.plan.title,
                    host=m.plan.host,
                    format=m.plan.format,
                    starts_at=m.plan.starts_at,
                    ends_at=m.plan.ends_at,
                    state=m.state,
                    held_at=m.held_at,
                    notes_due_at=m.notes_due_at,
                    note_count=len(m.note_ids),
                    prep_sent=m.prep_sent,
                    reminders_sent=m.reminders_sent,
                    escalated=m.escalated,
                    window_closed=m.window_closed,
                    topics=list(m.plan.topics),
                    cancel_reason=m.cancel_reason,
                    late_notes=len(m.late_note_ids),
                )
                for m in st.meetings
            ],
            note_counts={m.plan.meeting_id: len(m.note_ids) for m in st.meetings},
            next_deadline=nxt,
            pending_reminders=sorted(pending, key=lambda d: d.at),
            events=st.seq,
            history_length=workflow.info().get_current_history_length(),
            runs=st.runs,
            cancel_reason=st.cancel_reason or self._cancel_requested,
            report_id=st.report_id,
            follow_up_at=st.follow_up_at,
        )
