"""The contract of the PeerLearningCycle workflow: one dataclass in and out of
every workflow, activity, update, signal and query.

Plain stdlib dataclasses (not pydantic models) so the workflow sandbox imports
them without pass-through; the pydantic data converter serialises them. Every
field has a default where that makes sense, so fields can be added later
without breaking running cycles or saved histories.

All datetimes are timezone-aware UTC. Durations are ``timedelta`` so tests and
the chaos bench can compress a six-month schedule into minutes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

WORKFLOW_NAME = "PeerLearningCycle"
STATUS_QUERY = "status"

# Activity names: the workflow calls them by name so it never imports psycopg/httpx.
APPEND_CYCLE_EVENT = "append_cycle_event"
SUBMIT_NOTE = "submit_note"
DELIVER_OUTBOX = "deliver_outbox"
BUILD_WRAPUP_REPORT = "build_wrapup_report"

MEETING_KINDS = (
    "kickoff",
    "site_visit",
    "webinar",
    "study_visit",
    "national_meeting",
    "conference",
    "wrap_up",
)

# Meeting states (a meeting moves forward only: scheduled -> held, or -> cancelled).
SCHEDULED = "scheduled"
HELD = "held"
CANCELLED = "cancelled"

# Cycle phases, in order.
PHASE_KICKOFF = "kickoff"
PHASE_MEETINGS = "meetings"
PHASE_WRAP_UP = "wrap_up"
PHASE_FOLLOW_UP = "follow_up"
PHASE_COMPLETED = "completed"
PHASE_CANCELLED = "cancelled"


def workflow_id_for(cycle_id: str) -> str:
    return f"cycle-{cycle_id}"


@dataclass
class CyclePolicies:
    """The cycle's clock. Defaults follow the usual peer-review rhythm."""

    notes_due_after: timedelta = timedelta(days=7)
    reminder_offsets: list[timedelta] = field(
        default_factory=lambda: [timedelta(days=3), timedelta(days=1)]
    )  # before the notes deadline
    prep_pack_lead: timedelta = timedelta(days=14)
    self_assessment_lead: timedelta = timedelta(days=21)  # site visits only
    follow_up_after: timedelta = timedelta(days=90)  # after the wrap-up
    min_notes_per_meeting: int = 1  # fewer than this at the deadline: escalation
    continue_as_new_after: int = 5000  # history events; the server may suggest earlier


@dataclass
class MeetingPlan:
    meeting_id: str
    kind: str
    starts_at: datetime
    duration: timedelta = timedelta(hours=2)
    title: str = ""
    host: str | None = None  # partner id; required for site visits
    format: str = "on_site"  # on_site | online
    topics: list[str] = field(default_factory=list)
    target_groups: list[str] = field(default_factory=list)
    participants: list[str] = field(default_factory=list)

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + self.duration


@dataclass
class MeetingState:
    plan: MeetingPlan
    state: str = SCHEDULED
    held_at: datetime | None = None
    notes_due_at: datetime | None = None
    prep_sent: bool = False
    self_assessment_sent: bool = False
    reminders_sent: int = 0  # how many of the policy's reminder offsets are done
    window_closed: bool = False
    escalated: bool = False
    note_ids: list[str] = field(default_factory=list)
    cancel_reason: str | None = None
    late_note_ids: list[str] = field(default_factory=list)  # came after the window closed


@dataclass
class CycleState:
    """Everything continue-as-new carries into the next run."""

    meetings: list[MeetingState] = field(default_factory=list)
    seq: int = 0  # events appended so far: idempotency keys are workflow_id:seq
    phase: str = PHASE_KICKOFF
    paused: bool = False
    paused_at: datetime | None = None
    cancel_reason: str | None = None
    notes_by_key: dict[str, str] = field(default_factory=dict)  # client key -> note id
    wrapup_published_at: datetime | None = None
    follow_up_at: datetime | None = None
    report_id: str | None = None
    runs: int = 1  # 1 + continue-as-new count
    self_assessment: bool | None = None  # patch decision, fixed for the cycle's life


@dataclass
class CycleInput:
    cycle_id: str
    programme_id: str
    title: str
    partners: list[str]  # partner ids allowed to host
    meetings: list[MeetingPlan]
    ends_at: datetime  # nothing may be scheduled after this
    time_zone: str = "UTC"
    policies: CyclePolicies = field(default_factory=CyclePolicies)
    state: CycleState | None = None  # set only by continue-as-new


@dataclass
class CycleResult:
    cycle_id: str
    status: str  # completed | cancelled
    events: int
    report_id: str | None = None


# ---- updates and signals -------------------------------------------------


@dataclass
class MoveMeetingInput:
    meeting_id: str
    starts_at: datetime
    duration: timedelta | None = None


@dataclass
class SwapHostInput:
    meeting_id: str
    host: str


@dataclass
class AddMeetingInput:
    meeting: MeetingPlan


@dataclass
class CancelMeetingInput:
    meeting_id: str
    reason: str = ""


@dataclass
class MarkHeldInput:
    meeting_id: str
    held_at: datetime | None = None  # None: now


@dataclass
class CancelCycleInput:
    reason: str


@dataclass
class PauseInput:
    reason: str = ""


@dataclass
class SubmitNoteInput:
    meeting_id: str
    client_key: str
    author_organisation: str
    language: str
    #: In clear only from callers that do not seal (tests, old histories). The
    #: API sends ``text_sealed`` instead (peerlearn.privacy.seal_submission) so
    #: that the note's words never sit in clear in a Temporal history.
    text: str = ""
    format: str = "text"  # text | markdown
    submitted_by: str | None = None  # API key id
    #: The id the sealed fields are bound to (the API proposes it); None: the
    #: workflow draws one.
    note_id: str | None = None
    text_sealed: str | None = None
    #: The named person who wrote the note (optional; sealed like the text).
    author_person: str | None = None
    author_person_sealed: str | None = None


@dataclass
class SubmitNoteOutput:
    note_id: str
    duplicate: bool = False


@dataclass
class ChangeOutput:
    """Answer of every scheduling update: the event it produced."""

    event_type: str
    version: int


# ---- query -----------------------------------------------------------------


@dataclass
class MeetingStatus:
    meeting_id: str
    kind: str
    title: str
    host: str | None
    format: str
    starts_at: datetime
    ends_at: datetime
    state: str
    held_at: datetime | None
    notes_due_at: datetime | None
    note_count: int
    prep_sent: bool
    reminders_sent: int
    escalated: bool
    window_closed: bool
    topics: list[str] = field(default_factory=list)
    cancel_reason: str | None = None
    late_notes: int = 0  # notes that came after the window closed


@dataclass
class Deadline:
    at: datetime
    action: str  # what happens then, e.g. "preparation_pack", "meeting_held"
    meeting_id: str | None = None


@dataclass
class CycleStatus:
    cycle_id: str
    programme_id: str
    title: str
    phase: str
    status: str  # running | paused | completed | cancelled
    time_zone: str
    ends_at: datetime
    meetings: list[MeetingStatus]
    note_counts: dict[str, int]
    next_deadline: Deadline | None
    pending_reminders: list[Deadline]
    events: int
    history_length: int
    runs: int
    cancel_reason: str | None = None
    report_id: str | None = None
    follow_up_at: datetime | None = None


# ---- activities ------------------------------------------------------------


@dataclass
class AppendEventInput:
    stream_id: str
    idempotency_key: str
    type: str
    payload: dict[str, Any]
    occurred_at: datetime


@dataclass
class AppendEventOutput:
    version: int
    global_position: int
    duplicate: bool = False
    outbox_ids: list[str] = field(default_factory=list)


@dataclass
class SubmitNoteActivityInput:
    cycle_id: str
    idempotency_key: str
    note_id: str
    occurred_at: datetime
    note: SubmitNoteInput
    phase: str = ""
    late: bool = False  # the meeting's note window had closed


@dataclass
class DeliverOutboxInput:
    cycle_id: str
    outbox_ids: list[str] = field(default_factory=list)  # empty: every undelivered row


@dataclass
class DeliverOutboxOutput:
    delivered: int = 0
    failed: int = 0
    skipped_no_webhook: int = 0
    refused: int = 0  # the target's address is not allowed (peerlearn/outbound.py); final


@dataclass
class WrapUpInput:
    cycle_id: str
    idempotency_key: str
    occurred_at: datetime
    follow_up_at: datetime
    phase: str = PHASE_FOLLOW_UP


@dataclass
class WrapUpOutput:
    report_id: str
    version: int
    action_items: int = 0
    outbox_ids: list[str] = field(default_factory=list)
