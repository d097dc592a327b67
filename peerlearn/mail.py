"""E-mail from the outbox: who gets which message, in which language, with which Message-ID.

The projectors write one outbox row per notification-worthy event (a cycle
started, a meeting moved, a reminder is due...). This module turns one outbox
row into e-mails, one per recipient (and per meeting, for the invitations of
a whole cycle):

- **who**: the programme's contacts (``partners[].contacts`` and the
  programme-level ``facilitators``), chosen by the row's kind (:data:`RULES`):
  invitations go to the contacts of the partners taking part in the meeting,
  the self-assessment request to the host's contact, a reminder only to the
  partners with no note on that meeting yet, escalations to the programme's
  managers and facilitators;
- **language**: each contact's own, where a template exists (``en``, ``sv``,
  ``pl``, ``de`` in ``mail_templates/``), else English;
- **Message-ID**: derived from outbox id + recipient (+ meeting), so a message
  re-sent after a crash between the SMTP transaction and the delivery record
  carries the same id and receivers can deduplicate (delivery is at least once);
- **calendar**: meeting messages carry an RFC 5545 invitation
  (:mod:`peerlearn.ical`: one UID per meeting, SEQUENCE raised on each change,
  METHOD:CANCEL when cancelled).

The SQL to plan and record deliveries lives here too (``activities/mail.py``
only wraps it for Temporal); sending is plain :mod:`smtplib`.
"""

from __future__ import annotations

import hashlib
import re
import smtplib
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from peerlearn import action_plan, feedback, self_assessment
from peerlearn.events import EventType
from peerlearn.ical import (
    CalendarContext,
    LogEvent,
    MeetingSnapshot,
    feed,
    fold_meetings,
    invitation,
)
from peerlearn.settings import Settings

# ---------------------------------------------------------------- contacts

PARTNER_ROLES = ("coordinator", "host_contact", "participant", "facilitator")
PROGRAMME_ROLES = ("facilitator", "manager")
TEMPLATE_LANGUAGES = ("en", "sv", "pl", "de")
FALLBACK_LANGUAGE = "en"
# Deliberately simple (no quoted local parts, no IP literals): what people type.
EMAIL_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


def valid_email(value: str) -> bool:
    """True for a plain ``local@domain.tld`` address (what the API accepts)."""
    return len(value) <= 254 and EMAIL_RE.fullmatch(value) is not None


@dataclass(frozen=True)
class Contact:
    name: str
    email: str
    language: str
    role: str
    partner: str | None = None  # partner id; None for programme-level facilitators


def programme_contacts(programme: Mapping[str, Any]) -> list[Contact]:
    """Every contact of a programme row (partners' people, then facilitators with e-mail)."""
    out: list[Contact] = []
    # Rows written before contacts existed (or by the importer) may hold plain
    # strings for facilitators and no contacts: they simply yield no one.
    for p in programme.get("partners") or []:
        for c in p.get("contacts") or []:
            if not isinstance(c, dict) or not c.get("email"):
                continue
            out.append(Contact(c["name"], c["email"], c.get("language", "en"), c["role"], p["id"]))
    for f in programme.get("facilitators") or []:
        if isinstance(f, dict) and f.get("email"):
            out.append(
                Contact(
                    f["name"], f["email"], f.get("language", "en"), f.get("role", "facilitator")
                )
            )
    return out


# ---------------------------------------------------------------- templates


@dataclass(frozen=True)
class MailTemplate:
    subject: Template
    body: Template


@lru_cache(maxsize=16)
def templates(language: str) -> dict[str, MailTemplate]:
    """The templates of one language (empty when there is no file for it).

    Format: ``## <kind>`` starts a section; its first line is ``Subject: ...``,
    the rest is the body. Lines starting with ``#`` before the first section
    are comments.
    """
    base = resources.files("peerlearn.mail_templates")
    f = base / f"{language}.md"
    if not f.is_file():
        return {}
    out: dict[str, MailTemplate] = {}
    kind: str | None = None
    lines: list[str] = []

    def flush() -> None:
        if kind is None:
            return
        text = "\n".join(lines).strip("\n")
        head, _, body = text.partition("\n")
        if not head.startswith("Subject:"):
            raise ValueError(f"{language}.md section {kind!r} must start with 'Subject:'")
        out[kind] = MailTemplate(Template(head[8:].strip()), Template(body.strip("\n") + "\n"))

    for line in f.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            flush()
            kind, lines = line[3:].strip(), []
        elif kind is not None:
            lines.append(line)
    flush()
    return out


def template_language(kind: str, language: str) -> str:
    """The language a message of ``kind`` is written in for a contact preferring
    ``language`` (``pt-BR`` tries ``pt-BR``, then ``pt``, then English)."""
    for lang in (language, language.split("-")[0]):
        if kind in templates(lang):
            return lang
    return FALLBACK_LANGUAGE


def render(kind: str, language: str, values: Mapping[str, str]) -> tuple[str, str, str]:
    """(language used, subject, body); unknown placeholders stay visible, never raise."""
    lang = template_language(kind, language)
    t = templates(lang)[kind]
    subject = " ".join(t.subject.safe_substitute(values).split())
    return lang, subject, t.body.safe_substitute(values)


# ---------------------------------------------------------------- who gets what


class Audience(StrEnum):
    PARTICIPANTS = "participants"  # people of the partners taking part, and facilitators
    HOST = "host"  # the host partner's contact
    MISSING_NOTES = "missing_notes"  # partners with no note on the meeting yet
    MANAGERS = "managers"  # programme managers and facilitators
    FOLLOW_UP = "follow_up"  # managers and every partner's coordinator
    OVERDUE_OWNERS = "overdue_owners"  # managers and the contacts of overdue items' owners
    EVERYONE = "everyone"


@dataclass(frozen=True)
class MailRule:
    audience: Audience
    calendar: bool = False  # attach the meeting's iCalendar message
    unless_answered: bool = False  # skip when the host's self-assessment is in (or not asked)


# Outbox kind -> rule. A kind not listed here is not e-mailed (webhook only).
RULES: dict[str, MailRule] = {
    "invitation": MailRule(Audience.PARTICIPANTS, calendar=True),
    "meeting_changed": MailRule(Audience.PARTICIPANTS, calendar=True),
    "meeting_cancelled": MailRule(Audience.PARTICIPANTS, calendar=True),
    "preparation_pack": MailRule(Audience.PARTICIPANTS),
    "self_assessment": MailRule(Audience.HOST),
    "reminder": MailRule(Audience.MISSING_NOTES),
    "escalation": MailRule(Audience.MANAGERS),
    "follow_up": MailRule(Audience.FOLLOW_UP),
    "action_overdue": MailRule(Audience.OVERDUE_OWNERS),
    "wrapup_published": MailRule(Audience.EVERYONE),
    "feedback": MailRule(Audience.HOST),
    "self_assessment_reminder": MailRule(Audience.HOST, unless_answered=True),
}

_NOTE_WRITERS = ("coordinator", "participant")


def _of(contacts: Iterable[Contact], partner: str, roles: Sequence[str]) -> list[Contact]:
    """A partner's contacts with one of ``roles``; all its contacts if none has."""
    mine = [c for c in contacts if c.partner == partner]
    chosen = [c for c in mine if c.role in roles]
    return chosen or mine


def _managers(contacts: Iterable[Contact]) -> list[Contact]:
    return [c for c in contacts if c.partner is None or c.role == "facilitator"]


def recipients(
    audience: Audience,
    contacts: Sequence[Contact],
    *,
    partners: Sequence[str],
    host: str | None = None,
    missing: Sequence[str] = (),
) -> list[Contact]:
    """The contacts an audience means, one per e-mail address, in a stable order.

    ``partners``: the partner ids concerned (a meeting's participants, or the
    cycle's partners); ``missing``: those with no note yet (reminders).
    """
    chosen: list[Contact] = []
    if audience is Audience.PARTICIPANTS:
        chosen = [c for c in contacts if c.partner in partners] + _managers(contacts)
    elif audience is Audience.HOST and host:  # its host contact, else its coordinator
        chosen = _of(contacts, host, ("host_contact",))
        if not any(c.role == "host_contact" for c in chosen):
            chosen = _of(contacts, host, ("coordinator",))
    elif audience is Audience.MISSING_NOTES:
        for p in missing:
            chosen += _of(contacts, p, _NOTE_WRITERS)
    elif audience is Audience.MANAGERS:
        chosen = _managers(contacts)
    elif audience is Audience.FOLLOW_UP:
        chosen = _managers(contacts)
        for p in partners:
            chosen += [c for c in contacts if c.partner == p and c.role == "coordinator"]
    elif audience is Audience.OVERDUE_OWNERS:  # partners = the overdue items' owners
        chosen = _managers(contacts) + [c for c in contacts if c.partner in partners]
    elif audience is Audience.EVERYONE:
        chosen = list(contacts)
    seen: set[str] = set()
    out: list[Contact] = []
    for c in chosen:
        key = c.email.lower()
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def meeting_partners(m: MeetingSnapshot | None, cycle_partners: Sequence[str]) -> list[str]:
    """The partners taking part in a meeting: its named participants that are
    partners of the cycle, else every partner of the cycle."""
    if m is None:
        return list(cycle_partners)
    named = [p for p in m.participants if p in cycle_partners]
    if m.host and named and m.host not in named:
        named.append(m.host)
    return named or list(cycle_partners)


# ---------------------------------------------------------------- messages


def address_domain(sender: str) -> str:
    _, addr = parseaddr(sender)
    return addr.rpartition("@")[2] or "peerlearn.invalid"


def message_id_for(outbox_id: str, email: str, meeting_id: str, domain: str) -> str:
    """The stable Message-ID of one outbox row's e-mail to one address (and meeting)."""
    h = hashlib.sha256(f"{outbox_id}\0{email.lower()}\0{meeting_id}".encode()).hexdigest()
    return f"<pl.{h[:40]}@{domain}>"


@dataclass
class PlannedMail:
    """One e-mail to send: who, in which language, under which Message-ID."""

    outbox_id: str
    meeting_id: str  # '' when the row is not about one meeting
    contact: Contact
    language: str
    message_id: str
    message: EmailMessage
    ics_method: str | None = None
    ics: bytes | None = None


def build_message(
    *,
    sender: str,
    contact: Contact,
    subject: str,
    body: str,
    message_id: str,
    date: datetime,
    language: str,
    outbox_id: str,
    kind: str,
    ics: tuple[str, bytes] | None = None,
) -> EmailMessage:
    """The MIME message. ``Date`` is the event's time, so a re-send is identical."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = formataddr((contact.name, contact.email))
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg["Date"] = format_datetime(date)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Peerlearn-Outbox-Id"] = outbox_id
    msg["X-Peerlearn-Kind"] = kind
    msg.set_content(body, charset="utf-8")
    if ics is not None:
        method, data = ics
        # As an alternative part (Outlook, Gmail show the RSVP buttons) and as a
        # file (clients that ignore alternatives still get the invitation).
        msg.add_alternative(data, maintype="text", subtype="calendar", params={"method": method})
        msg.add_attachment(
            data,
            maintype="application",
            subtype="ics",
            filename="invite.ics" if method == "REQUEST" else "cancel.ics",
        )
    # after the parts: making a multipart moves Content-* headers into the first part
    msg["Content-Language"] = language
    # MIME boundaries from the Message-ID, not random: a re-send is byte-identical
    seed = hashlib.sha256(message_id.encode()).hexdigest()[:24]
    for i, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(f"=_pl_{seed}_{i}")
    return msg


def _local(value: str | datetime | None, tz: ZoneInfo) -> str:
    if value is None or value == "":
        return ""
    dt = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


@dataclass
class CycleContext:
    """What planning needs about a cycle, read once per delivery run."""

    programme: dict[str, Any]
    cycle: dict[str, Any]
    events: list[LogEvent]
    note_authors: dict[str, set[str]] = field(default_factory=dict)  # meeting -> partner ids
    self_assessments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # answers
    action_items: list[dict[str, Any]] = field(default_factory=list)
    feedback: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # meeting -> items
    focus_topics: dict[str, list[str]] = field(default_factory=dict)  # voted (issue 13)

    @property
    def partner_names(self) -> dict[str, str]:
        return {p["id"]: p.get("name", p["id"]) for p in self.programme.get("partners") or []}


async def load_cycle_context(conn: AsyncConnection[Any], cycle_id: str) -> CycleContext | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM cycles WHERE id = %s", (cycle_id,))
        cycle = await cur.fetchone()
        if cycle is None:
            return None
        await cur.execute("SELECT * FROM programmes WHERE id = %s", (cycle["programme_id"],))
        programme = await cur.fetchone()
        if programme is None:
            return None
        await cur.execute(
            "SELECT type, version, payload, occurred_at FROM events"
            " WHERE stream_id = %s AND type = ANY(%s) ORDER BY version",
            (cycle_id, [str(t) for t in CALENDAR_EVENTS]),
        )
        events = [LogEvent(**r) for r in await cur.fetchall()]
        await cur.execute(
            "SELECT DISTINCT meeting_id, author_organisation FROM notes WHERE cycle_id = %s",
            (cycle_id,),
        )
        authors: dict[str, set[str]] = {}
        for r in await cur.fetchall():
            authors.setdefault(r["meeting_id"], set()).add(r["author_organisation"])
        await cur.execute(
            "SELECT meeting_id, topics FROM meeting_focus_topics WHERE cycle_id = %s",
            (cycle_id,),
        )
        focus = {r["meeting_id"]: list(r["topics"]) for r in await cur.fetchall()}
    answers = {r["meeting_id"]: r["answers"] for r in await self_assessment.load(conn, cycle_id)}
    items = await action_plan.items(conn, cycle_id)
    fb = {r["meeting_id"]: r["items"] for r in await feedback.summaries(conn, cycle_id)}
    return CycleContext(programme, cycle, events, authors, answers, items, fb, focus)


async def prepare_rows(conn: AsyncConnection[Any], rows: Sequence[Mapping[str, Any]]) -> None:
    """Work a row's e-mail needs before planning: the host's feedback summary is
    compiled and stored at its first delivery (peerlearn/feedback.py)."""
    for r in rows:
        if r["kind"] == "feedback" and r["meeting_id"]:
            host = str(r["recipient"]).removeprefix("host:")
            await feedback.ensure_summary(conn, r["cycle_id"], r["meeting_id"], host, r["id"])


CALENDAR_EVENTS = (
    EventType.CYCLE_STARTED,
    EventType.MEETING_SCHEDULED,
    EventType.MEETING_MOVED,
    EventType.HOST_SWAPPED,
    EventType.MEETING_CANCELLED,
    EventType.CYCLE_CANCELLED,
)


def _values(
    kind: str, row: Mapping[str, Any], ctx: CycleContext, m: MeetingSnapshot | None
) -> dict[str, str]:
    """Placeholder values shared by every recipient of a row."""
    tz = ZoneInfo(ctx.programme.get("time_zone") or "UTC")
    names = ctx.partner_names
    ev = (row.get("payload") or {}).get("event") or {}
    p: dict[str, Any] = ev.get("payload") or {}
    pol = ctx.cycle.get("policies") or {}
    values = {
        "programme": ctx.programme.get("name", ""),
        "cycle": ctx.cycle.get("title", ""),
        "time_zone": str(tz),
        "reason": p.get("reason") or "-",
        "reminder": str(p.get("reminder", "")),
        "note_count": str(p.get("note_count", "")),
        "expected": str(p.get("expected", "")),
        "open_items": str((row.get("payload") or {}).get("open_action_items", "")),
        "report_id": str((row.get("payload") or {}).get("report_id", "")),
        "notes_due_days": f"{float(pol.get('notes_due_after_s', 7 * 86400)) / 86400:g}",
        "due": _local(p.get("notes_due_at") or p.get("due_at"), tz),
        "cycle_path": f"/v1/cycles/{ctx.cycle.get('id', '')}",
    }
    if m is not None:
        values.update(
            meeting=m.title or m.kind.replace("_", " ").capitalize() or m.meeting_id,
            meeting_id=m.meeting_id,
            starts=_local(m.starts_at, tz),
            ends=_local(m.ends_at, tz),
            host=names.get(m.host, m.host) if m.host else "-",
            location="Online" if m.format == "online" else names.get(m.host or "", "-"),
            topics=", ".join(_merged(ctx.focus_topics.get(m.meeting_id, []), m.topics)) or "-",
            target_groups=", ".join(p.get("target_groups") or []) or "-",
            self_assessment=self_assessment.as_text(ctx.self_assessments.get(m.meeting_id, []))
            or "-",
            meeting_path=f"/v1/cycles/{m.cycle_id}/meetings/{m.meeting_id}",
        )
    if kind == "self_assessment_reminder" and m is not None:  # answers are due by the visit
        values["due"] = values["starts"]
    values["questions"] = questions_text(ctx.programme.get("self_assessment_questions") or [])
    values["open_list"] = open_items_text(ctx, row["created_at"], tz)
    values["overdue_list"] = open_items_text(ctx, row["created_at"], tz, overdue_only=True)
    if m is not None:
        items = ctx.feedback.get(m.meeting_id, [])
        for group in feedback.GROUPS:
            values[group] = feedback.group_text(items, group, names)
    return values


def _merged(focus: Sequence[str], planned: Sequence[str]) -> list[str]:
    """The partners' voted focus topics first, then the planned ones not among them."""
    seen = {t.casefold() for t in focus}
    return [*focus, *(t for t in planned if t.casefold() not in seen)]


def open_items_text(
    ctx: CycleContext, at: datetime, tz: ZoneInfo, *, overdue_only: bool = False
) -> str:
    """The action plan's open items, overdue ones first (for the follow-up e-mail);
    with ``overdue_only`` just those past due at ``at`` (the escalation)."""
    names = ctx.partner_names
    open_items = [i for i in ctx.action_items if i["status"] not in action_plan.CLOSED]
    if overdue_only:
        open_items = [i for i in open_items if action_plan.overdue(i, at)]
    open_items.sort(  # overdue, then by due date, undated last
        key=lambda i: (
            not action_plan.overdue(i, at),
            i["due_at"] is None,
            i["due_at"] or at,
            i["id"],
        )
    )
    lines = []
    for i in open_items:
        due = f", due {_local(i['due_at'], tz)}" if i["due_at"] else ""
        late = " OVERDUE" if action_plan.overdue(i, at) else ""
        lines.append(
            f"- [{names.get(i['owner'], i['owner'])}] {i['what']} ({i['status']}{due}){late}"
        )
    return "\n".join(lines) or "-"


def questions_text(questions: Sequence[Mapping[str, Any]]) -> str:
    """A questionnaire as plain text for the host's request e-mail."""
    lines = []
    for q in questions:
        hint = {"scale": " (1-5)", "choice": f" ({' / '.join(q.get('choices', []))})"}
        lines.append(f"- {q['text']}{hint.get(q['type'], '')}")
    return "\n".join(lines) or "-"


def plan_row(row: Mapping[str, Any], ctx: CycleContext, settings: Settings) -> list[PlannedMail]:
    """The e-mails one outbox row means (empty for kinds that are not mailed).

    Pure given the context: the same row and context always give the same
    messages, byte for byte, which is what makes re-sends identical.
    """
    kind = row["kind"]
    rule = RULES.get(kind)
    if rule is None:
        return []
    contacts = programme_contacts(ctx.programme)
    if not contacts:
        return []
    version = int(((row.get("payload") or {}).get("event") or {}).get("version") or 0)
    meetings = fold_meetings(row["cycle_id"], ctx.events, upto_version=version or None)
    if row.get("meeting_id"):
        targets: list[MeetingSnapshot | None] = [meetings.get(row["meeting_id"])]
    elif kind == "invitation":  # the cycle started: one invitation per meeting
        ordered = sorted(meetings.values(), key=lambda x: (x.starts_at, x.meeting_id))
        targets = list(ordered)
    else:
        targets = [None]
    if rule.unless_answered and (
        not ctx.programme.get("self_assessment_questions")
        or any(m is not None and m.meeting_id in ctx.self_assessments for m in targets)
    ):
        return []
    cycle_partners = list(ctx.cycle.get("partners") or [])
    domain = address_domain(settings.smtp_from)
    sender_name, sender_addr = parseaddr(settings.smtp_from)
    out: list[PlannedMail] = []
    for m in targets:
        partners = meeting_partners(m, cycle_partners)
        if kind == "action_overdue":  # escalated to the owners of the overdue items
            partners = sorted(
                {i["owner"] for i in ctx.action_items if action_plan.overdue(i, row["created_at"])}
            )
        missing: list[str] = []
        if m is not None:
            wrote = ctx.note_authors.get(m.meeting_id, set())
            missing = [p for p in partners if p not in wrote]
        people = recipients(
            rule.audience,
            contacts,
            partners=partners,
            host=m.host if m is not None else None,
            missing=missing,
        )
        if not people:
            continue
        values = _values(kind, row, ctx, m)
        values["missing"] = ", ".join(ctx.partner_names.get(p, p) for p in missing) or "-"
        ics: tuple[str, bytes] | None = None
        if rule.calendar and m is not None:
            cal = CalendarContext(
                domain=domain,
                organizer_email=sender_addr or f"peerlearn@{domain}",
                organizer_name=sender_name or "peerlearn",
                cycle_title=ctx.cycle.get("title", ""),
                partner_names=ctx.partner_names,
                attendees=[(c.name, c.email) for c in people],
            )
            ics = invitation(m, cal)
        mid = m.meeting_id if m is not None else ""
        for c in people:
            lang, subject, body = render(
                kind,
                c.language,
                {
                    **values,
                    "name": c.name,
                    "organisation": ctx.partner_names.get(c.partner or "", c.partner or ""),
                },
            )
            message_id = message_id_for(row["id"], c.email, mid, domain)
            msg = build_message(
                sender=settings.smtp_from,
                contact=c,
                subject=subject,
                body=body,
                message_id=message_id,
                date=row["created_at"],
                language=lang,
                outbox_id=row["id"],
                kind=kind,
                ics=ics,
            )
            out.append(
                PlannedMail(
                    row["id"],
                    mid,
                    c,
                    lang,
                    message_id,
                    msg,
                    ics[0] if ics else None,
                    ics[1] if ics else None,
                )
            )
    return out


# ---------------------------------------------------------------- delivery state


async def pending_rows(conn: AsyncConnection[Any], cycle_id: str) -> list[dict[str, Any]]:
    """Outbox rows of a cycle whose kind is mailed and whose e-mails are not all sent."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT o.* FROM outbox o LEFT JOIN mail_outbox_done d ON d.outbox_id = o.id"
            " WHERE o.cycle_id = %s AND o.kind = ANY(%s) AND d.outbox_id IS NULL"
            " ORDER BY o.created_at, o.id",
            (cycle_id, list(RULES)),
        )
        return list(await cur.fetchall())


async def sent_keys(
    conn: AsyncConnection[Any], outbox_ids: Sequence[str]
) -> set[tuple[str, str, str]]:
    """(outbox id, address, meeting) of the e-mails already sent."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT outbox_id, recipient, meeting_id FROM mail_deliveries"
            " WHERE outbox_id = ANY(%s) AND sent_at IS NOT NULL",
            (list(outbox_ids),),
        )
        return {(r["outbox_id"], r["recipient"], r["meeting_id"]) for r in await cur.fetchall()}


async def record_attempt(
    conn: AsyncConnection[Any], mail: PlannedMail, *, sent: bool, error: str | None
) -> None:
    await conn.execute(
        "INSERT INTO mail_deliveries (outbox_id, recipient, meeting_id, message_id, language,"
        " attempts, sent_at, last_error, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, 1, CASE WHEN %s THEN now() END, %s, now())"
        " ON CONFLICT (outbox_id, recipient, meeting_id) DO UPDATE SET"
        " attempts = mail_deliveries.attempts + 1,"
        " sent_at = COALESCE(mail_deliveries.sent_at, EXCLUDED.sent_at),"
        " last_error = EXCLUDED.last_error, updated_at = now()",
        (
            mail.outbox_id,
            mail.contact.email.lower(),
            mail.meeting_id,
            mail.message_id,
            mail.language,
            sent,
            error,
        ),
    )


async def mark_row_done(conn: AsyncConnection[Any], outbox_id: str, messages: int) -> None:
    await conn.execute(
        "INSERT INTO mail_outbox_done (outbox_id, messages) VALUES (%s, %s)"
        " ON CONFLICT (outbox_id) DO NOTHING",
        (outbox_id, messages),
    )


# ---------------------------------------------------------------- SMTP


class MailServerUnavailable(ConnectionError):
    """The embedded catcher is not running (no SMTP server configured): mail waits."""


def open_smtp(settings: Settings, *, timeout: float = 10.0) -> smtplib.SMTP:
    """A connected (and, if configured, STARTTLS-secured and logged-in) SMTP session."""
    host, port = settings.smtp_address
    try:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    except ConnectionRefusedError as exc:
        if settings.embedded_mail_catcher:
            raise MailServerUnavailable(
                f"no mail catcher on {host}:{port} (PEERLEARN_SMTP_HOST unset)"
            ) from exc
        raise
    try:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
    except (smtplib.SMTPException, OSError):
        smtp.close()
        raise
    return smtp


def envelope_sender(settings: Settings) -> str:
    return parseaddr(settings.smtp_from)[1] or f"peerlearn@{address_domain(settings.smtp_from)}"


# ---------------------------------------------------------------- the feed


def calendar_feed(ctx: CycleContext, settings: Settings) -> bytes:
    """The subscribable calendar of a cycle (``GET /v1/cycles/{id}/calendar.ics``):
    the same UIDs and SEQUENCE numbers as the e-mailed invitations, so a client
    that has both shows one entry per meeting."""
    cycle_id = ctx.cycle["id"]
    domain = address_domain(settings.smtp_from)
    sender_name, sender_addr = parseaddr(settings.smtp_from)
    cal = CalendarContext(
        domain=domain,
        organizer_email=sender_addr or f"peerlearn@{domain}",
        organizer_name=sender_name or "peerlearn",
        cycle_title=ctx.cycle.get("title", ""),
        partner_names=ctx.partner_names,
    )
    meetings = fold_meetings(cycle_id, ctx.events).values()
    name = f"{ctx.programme.get('name', '')}: {ctx.cycle.get('title', '')}"
    return feed(meetings, cal, name=name)
