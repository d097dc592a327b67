"""Request and response bodies of the cycle engine API (programmes, cycles,
meetings, notes). Times are ISO 8601 with an offset; responses show UTC and the
programme's local time side by side."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AnyHttpUrl,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from peerlearn.text_rules import person_name

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
MeetingKind = Literal[
    "kickoff", "site_visit", "webinar", "study_visit", "national_meeting", "conference", "wrap_up"
]


def _email(v: str) -> str:
    from peerlearn.mail import valid_email

    v = v.strip()
    if not valid_email(v):
        raise ValueError(f"{v!r} is not an e-mail address (name@domain.tld)")
    return v


LANGUAGE_PATTERN = r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$"

# Bounds that keep every computed instant (meeting + notes window + reminders
# + follow-up) far inside what datetime and PostgreSQL hold: crafted values
# such as 1e10 days or year 9999 are a 422 here, never an overflow later.
MAX_POLICY_DAYS = 366.0
MAX_FOLLOW_UP_DAYS = 5 * 366.0
MAX_REMINDERS = 10
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


def iana_zone(v: str) -> str:
    """An IANA zone name from the tz database's list. ``ZoneInfo`` alone also
    opens files such as ``localtime`` or ``posixrules`` that are no zone name
    (they follow whatever the server's configuration is)."""
    if v not in _zone_names():
        raise ValueError(f"unknown IANA time zone {v!r}")
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {v!r}") from exc
    return v


@lru_cache(maxsize=1)
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones() - {"localtime", "posixrules", "Factory"})


def bounded_instant(v: datetime | None) -> datetime | None:
    """Instants between 2000 and 2100 only (see :data:`LATEST`)."""
    if v is not None and not (EARLIEST <= v <= LATEST):
        raise ValueError(
            f"{v.isoformat()} is outside {EARLIEST.year}-{LATEST.year - 1}; check the year"
        )
    return v


class Contact(BaseModel):
    """A person of a partner who receives the cycle's e-mails (peerlearn/mail.py)."""

    name: str = Field(min_length=1, max_length=200, examples=["Anna Berg"])
    email: str = Field(max_length=254, examples=["anna.berg@vaxa.se"])
    language: str = Field(
        default="en",
        pattern=LANGUAGE_PATTERN,
        description="Preferred language (BCP 47, e.g. sv, pl, de); templates: en, sv, pl, de.",
    )
    role: Literal["coordinator", "host_contact", "participant", "facilitator"] = Field(
        examples=["coordinator"]
    )

    _check_email = field_validator("email")(_email)


class Partner(BaseModel):
    id: str = Field(pattern=ID_PATTERN, examples=["vaxa"])
    name: str = Field(min_length=1, max_length=200, examples=["Växa Cluster"])
    country: str = Field(min_length=2, max_length=2, examples=["SE"])
    kind: str = Field(default="cluster", max_length=50, examples=["cluster", "city", "agency"])
    contacts: list[Contact] = Field(default_factory=list, max_length=100)
    role: Literal["frontrunner", "follower", "organiser"] | None = Field(
        default=None, description="How the host-rotation planner treats it (default follower)."
    )


class Facilitator(BaseModel):
    """Programme-level people: escalations and follow-ups go to them (if they have e-mail)."""

    name: str = Field(min_length=1, max_length=200)
    organisation: str | None = None
    email: str | None = Field(default=None, max_length=254)
    language: str = Field(default="en", pattern=LANGUAGE_PATTERN)
    role: Literal["facilitator", "manager"] = "facilitator"

    @field_validator("email")
    @classmethod
    def _check_email(cls, v: str | None) -> str | None:
        return None if v is None else _email(v)


class Question(BaseModel):
    """One question of a programme's self-assessment questionnaire (issue 13)."""

    id: str = Field(pattern=ID_PATTERN, examples=["q1"])
    text: str = Field(min_length=1, max_length=1000, examples=["How do you support SMEs?"])
    type: Literal["text", "scale", "choice"] = Field(
        description="text: free text; scale: 1 (weak) to 5 (strong); choice: one of choices"
    )
    choices: list[str] = Field(default_factory=list, max_length=20)

    @field_validator("choices")
    @classmethod
    def _choices(cls, v: list[str]) -> list[str]:
        if any(not c.strip() or len(c) > 200 for c in v) or len(set(v)) != len(v):
            raise ValueError("choices must be distinct, non-empty, at most 200 characters")
        return v

    def model_post_init(self, context: Any) -> None:
        if (self.type == "choice") != bool(self.choices):
            raise ValueError("a choice question needs choices; other types take none")


def _unique_questions(v: list[Question] | None) -> list[Question] | None:
    if v is not None and len({q.id for q in v}) != len(v):
        raise ValueError("question ids must be unique")
    return v


class ProgrammeCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "greentech",
                    "name": "Green tech peer reviews",
                    "time_zone": "Europe/Stockholm",
                    "partners": [
                        {"id": "vaxa", "name": "Växa Cluster", "country": "SE", "kind": "cluster"},
                        {"id": "lodz", "name": "Łódź agency", "country": "PL", "kind": "agency"},
                    ],
                    "facilitators": [{"name": "A. Facilitator", "organisation": "ESCA"}],
                    "languages": ["en", "sv", "pl"],
                    "webhook_url": "https://example.org/hooks/peerlearn",
                }
            ]
        }
    )
    id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="Chosen id; default generated."
    )
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    time_zone: str = Field(default="UTC", description="IANA zone, e.g. Europe/Warsaw.")
    partners: list[Partner] = Field(min_length=1)
    facilitators: list[Facilitator] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    webhook_url: AnyHttpUrl | None = None
    self_assessment_questions: list[Question] = Field(
        default_factory=list,
        max_length=50,
        description="The questionnaire a host answers before its site visit.",
    )

    _check_questions = field_validator("self_assessment_questions")(_unique_questions)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str) -> str:
        return iana_zone(v)

    @field_validator("partners")
    @classmethod
    def _unique_partners(cls, v: list[Partner]) -> list[Partner]:
        ids = [p.id for p in v]
        if len(ids) != len(set(ids)):
            raise ValueError("partner ids must be unique")
        return v


class ProgrammeUpdate(BaseModel):
    """``PATCH /v1/programmes/{id}``: the fields given replace the stored ones
    (a list replaces the whole list: send every partner with its contacts).
    Partners may be added, never removed: cycles and notes refer to their ids."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "partners": [
                        {
                            "id": "vaxa",
                            "name": "Växa Cluster",
                            "country": "SE",
                            "contacts": [
                                {
                                    "name": "Anna Berg",
                                    "email": "anna.berg@vaxa.se",
                                    "language": "sv",
                                    "role": "coordinator",
                                }
                            ],
                        }
                    ],
                    "facilitators": [
                        {"name": "Max Weber", "email": "max@esca.org", "role": "manager"}
                    ],
                }
            ]
        }
    )
    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=5000)
    time_zone: str | None = None
    partners: list[Partner] | None = Field(default=None, min_length=1)
    facilitators: list[Facilitator] | None = None
    languages: list[str] | None = None
    webhook_url: AnyHttpUrl | None = None
    self_assessment_questions: list[Question] | None = Field(default=None, max_length=50)

    _check_questions = field_validator("self_assessment_questions")(_unique_questions)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, v: str | None) -> str | None:
        return None if v is None else ProgrammeCreate._zone(v)

    @field_validator("partners")
    @classmethod
    def _unique_partners(cls, v: list[Partner] | None) -> list[Partner] | None:
        return None if v is None else ProgrammeCreate._unique_partners(v)


class Programme(BaseModel):
    id: str
    name: str
    description: str
    time_zone: str
    partners: list[Partner]
    facilitators: list[Facilitator]
    languages: list[str]
    webhook_url: str | None
    self_assessment_questions: list[Question] = Field(default_factory=list)
    created_at: datetime
    version: int


class ProgrammePage(BaseModel):
    items: list[Programme]


class MeetingIn(BaseModel):
    meeting_id: str | None = Field(default=None, pattern=ID_PATTERN, examples=["visit-1"])
    kind: MeetingKind = Field(examples=["site_visit"])
    starts_at: AwareDatetime = Field(examples=["2031-03-10T09:00:00+01:00"])
    duration_minutes: float = Field(
        default=120, gt=0, le=20_160, description="Fractions allowed (compressed test schedules)."
    )
    title: str = Field(default="", max_length=300)
    host: str | None = Field(default=None, description="Partner id; required for site visits.")
    format: Literal["on_site", "online"] = "on_site"
    topics: list[str] = Field(default_factory=list)
    target_groups: list[str] = Field(default_factory=list)
    participants: list[str] = Field(default_factory=list)

    _bounded = field_validator("starts_at")(bounded_instant)


class PoliciesIn(BaseModel):
    """The cycle's clock, in days (fractions allowed, for compressed test schedules).

    Every field is bounded (a year at most; the follow-up five), finite, and the
    reminders are a few distinct offsets inside the notes window."""

    notes_due_after_days: float = Field(default=7, gt=0, le=MAX_POLICY_DAYS, allow_inf_nan=False)
    reminder_offsets_days: list[float] = Field(
        default_factory=lambda: [3.0, 1.0], max_length=MAX_REMINDERS
    )
    prep_pack_lead_days: float = Field(default=14, ge=0, le=MAX_POLICY_DAYS, allow_inf_nan=False)
    self_assessment_lead_days: float = Field(
        default=21, ge=0, le=MAX_POLICY_DAYS, allow_inf_nan=False
    )
    follow_up_after_days: float = Field(
        default=90, ge=0, le=MAX_FOLLOW_UP_DAYS, allow_inf_nan=False
    )
    min_notes_per_meeting: int = Field(default=1, ge=0, le=1000)

    @model_validator(mode="after")
    def _reminders(self) -> PoliciesIn:
        offsets = self.reminder_offsets_days
        for i, d in enumerate(offsets):
            if not (0 < d < self.notes_due_after_days):  # also refuses NaN and infinities
                raise ValueError(
                    f"reminder_offsets_days[{i}] = {d}: each reminder must fall inside the"
                    f" notes window (more than 0 and less than {self.notes_due_after_days} days"
                    " before the deadline)"
                )
        if len(set(offsets)) != len(offsets):
            raise ValueError("reminder_offsets_days: each offset at most once")
        return self


class CycleCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "cycle_id": "greentech-2031",
                    "programme_id": "greentech",
                    "title": "Peer reviews 2031",
                    "meetings": [
                        {
                            "meeting_id": "kickoff",
                            "kind": "kickoff",
                            "format": "online",
                            "starts_at": "2031-02-01T10:00:00+01:00",
                        },
                        {
                            "meeting_id": "visit-1",
                            "kind": "site_visit",
                            "host": "vaxa",
                            "starts_at": "2031-03-10T09:00:00+01:00",
                            "duration_minutes": 960,
                        },
                    ],
                    "policies": {"notes_due_after_days": 7, "reminder_offsets_days": [3, 1]},
                }
            ]
        }
    )
    cycle_id: str | None = Field(default=None, pattern=ID_PATTERN)
    programme_id: str = Field(pattern=ID_PATTERN)
    title: str = Field(min_length=1, max_length=300)
    ends_at: AwareDatetime | None = Field(
        default=None,
        description="Nothing may be scheduled after this; default last meeting + 60 days.",
    )
    meetings: list[MeetingIn] = Field(min_length=1, max_length=200)
    policies: PoliciesIn = Field(default_factory=PoliciesIn)

    _bounded = field_validator("ends_at")(bounded_instant)


class CycleStartedOut(BaseModel):
    cycle_id: str
    workflow_id: str


class LocalTime(BaseModel):
    utc: datetime
    local: str = Field(description="The same instant in the programme's time zone.")


class DeadlineOut(BaseModel):
    at: LocalTime
    action: str
    meeting_id: str | None = None


class MeetingOut(BaseModel):
    meeting_id: str
    kind: str
    title: str
    host: str | None
    format: str
    starts_at: LocalTime
    ends_at: LocalTime
    state: str
    held_at: LocalTime | None = None
    notes_due_at: LocalTime | None = None
    note_count: int
    prep_sent: bool
    reminders_sent: int
    escalated: bool
    topics: list[str] = Field(default_factory=list)
    cancel_reason: str | None = None
    late_notes: int = Field(
        default=0,
        description="Notes that came after the note window closed (included in note_count).",
    )


class CycleStatusOut(BaseModel):
    cycle_id: str
    programme_id: str
    title: str
    phase: str
    status: str
    time_zone: str
    ends_at: LocalTime
    meetings: list[MeetingOut]
    note_counts: dict[str, int]
    next_deadline: DeadlineOut | None
    pending_reminders: list[DeadlineOut]
    cancel_reason: str | None = None
    report_id: str | None = None
    follow_up_at: LocalTime | None = None
    events: int
    history_length: int | None = None
    source: Literal["workflow", "read_model"] = Field(
        description="workflow: live query; read_model: projection (the worker did not answer)."
    )


class CycleSummary(BaseModel):
    id: str
    programme_id: str
    workflow_id: str
    title: str
    phase: str
    status: str
    ends_at: datetime
    created_at: datetime
    updated_at: datetime
    version: int


class CyclePage(BaseModel):
    items: list[CycleSummary]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end."
    )


class EventOut(BaseModel):
    global_position: int
    version: int
    type: str
    payload: dict[str, Any]
    occurred_at: datetime


class EventPage(BaseModel):
    items: list[EventOut]


class MoveIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"starts_at": "2031-03-17T09:00:00+01:00"}]}
    )
    starts_at: AwareDatetime
    duration_minutes: float | None = Field(default=None, gt=0, le=20_160)

    _bounded = field_validator("starts_at")(bounded_instant)


class HostIn(BaseModel):
    host: str = Field(examples=["lodz"])


class ReasonIn(BaseModel):
    reason: str = Field(default="", max_length=1000, examples=["host unavailable"])


class MarkHeldIn(BaseModel):
    held_at: AwareDatetime | None = Field(
        default=None, description="Default: now; never in the future or before the cycle began."
    )

    _bounded = field_validator("held_at")(bounded_instant)


class ChangeOut(BaseModel):
    event_type: str
    version: int


class AcceptedOut(BaseModel):
    accepted: bool = True
    detail: str


class NoteCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "author_organisation": "vaxa",
                    "language": "sv",
                    "text": "Värden visade hur de matchar företag med forskare.",
                    "client_key": "vaxa-visit-1-notes",
                }
            ]
        }
    )
    author_organisation: str = Field(min_length=1, max_length=200)
    language: str = Field(min_length=2, max_length=16)
    text: str = Field(min_length=1)
    format: Literal["text", "markdown"] = "text"
    client_key: str | None = Field(
        default=None,
        max_length=200,
        description="Idempotency key (or the Idempotency-Key header): same key, same note.",
    )
    visibility: Literal["facilitators", "programme", "public"] | None = Field(
        default=None,
        description="Who reads its statements: facilitators (admin/manager keys only),"
        " programme (default) or public; the author may change it (PATCH /v1/notes/{id}).",
    )
    author_person: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The person who wrote the note (name or e-mail; optional). Personal"
        " data: sealed in the event log, shown only to those who may read the note, and"
        " the handle of 'erase everything this person wrote' (POST /v1/erasures).",
        examples=["Anna Berg"],
    )

    @field_validator("author_person")
    @classmethod
    def _person_is_a_name(cls, v: str | None) -> str | None:
        return None if v is None else person_name(v)


class NoteSubmitted(BaseModel):
    note_id: str
    duplicate: bool


class NoteRow(BaseModel):
    id: str
    cycle_id: str
    meeting_id: str
    author_organisation: str
    language: str
    text: str
    format: str
    submitted_at: datetime
    theme_ids: list[str] = Field(default_factory=list)
    late: bool = Field(default=False, description="Came after the meeting's note window closed.")
    visibility: str = "programme"
    author_person: str | None = Field(
        default=None,
        description="Who wrote it, when given; shown to managers, admins and the author's"
        " organisation only.",
    )


class NotePage(BaseModel):
    items: list[NoteRow]


# ---- self-assessment answers (issue 13) ------------------------------------------


class AnswerIn(BaseModel):
    question_id: str = Field(pattern=ID_PATTERN)
    value: str | int = Field(
        description="text: the answer (up to 5000 characters); scale: 1-5; choice: one choice"
    )


class SelfAssessmentIn(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "language": "sv",
                    "answers": [
                        {"question_id": "q1", "value": "Vi erbjuder mentorprogram för SMF."},
                        {"question_id": "q2", "value": 4},
                    ],
                }
            ]
        }
    )
    language: str = Field(default="en", pattern=LANGUAGE_PATTERN)
    answers: list[AnswerIn] = Field(min_length=1, max_length=50)


class AnswerOut(BaseModel):
    question_id: str
    question: str
    type: str
    value: str | int


class SelfAssessmentOut(BaseModel):
    cycle_id: str
    meeting_id: str
    host: str
    language: str
    answers: list[AnswerOut]
    submitted_by: str | None
    submitted_at: datetime
