"""iCalendar (RFC 5545) for meetings: invitations, updates, cancellations and the feed.

Every meeting keeps ONE ``UID`` for its whole life (``<cycle>.<meeting>@<domain>``)
so calendar clients update the entry they already have instead of adding a new
one; ``SEQUENCE`` counts the changes a client must apply (each move, host swap
and the cancellation), which is how a client tells a newer REQUEST from a stale
one. The meeting's state at any point of the cycle is folded from the event log
(:func:`fold_meetings`), never read from the live ``meetings`` row: a message
re-sent after a crash must carry exactly the bytes of the first attempt, and an
update delivered late must not claim a later move's time.

Pure functions: no database, no clock (``DTSTAMP`` is the event's time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from icalendar import Calendar, Event, vCalAddress, vText

from peerlearn.events import EventType

PRODID = "-//peerlearn//peer-learning cycles//EN"
Method = Literal["REQUEST", "CANCEL", "PUBLISH"]

# The events that change what a calendar entry shows; each raises SEQUENCE.
_CHANGES = (EventType.MEETING_MOVED, EventType.HOST_SWAPPED, EventType.MEETING_CANCELLED)


@dataclass(frozen=True)
class MeetingSnapshot:
    """A meeting as a calendar sees it after some prefix of the cycle's log."""

    cycle_id: str
    meeting_id: str
    kind: str
    title: str
    host: str | None
    format: str
    starts_at: datetime
    ends_at: datetime
    topics: tuple[str, ...] = ()
    participants: tuple[str, ...] = ()
    cancelled: bool = False
    sequence: int = 0
    changed_at: datetime | None = None  # occurred_at of the event that last changed it


@dataclass(frozen=True)
class LogEvent:
    """The columns of an ``events`` row the fold needs."""

    type: str
    version: int
    payload: Mapping[str, Any]
    occurred_at: datetime


def _dt(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _from_plan(cycle_id: str, p: Mapping[str, Any], at: datetime) -> MeetingSnapshot:
    return MeetingSnapshot(
        cycle_id=cycle_id,
        meeting_id=p["meeting_id"],
        kind=p.get("kind", ""),
        title=p.get("title") or "",
        host=p.get("host"),
        format=p.get("format", "on_site"),
        starts_at=_dt(p["starts_at"]),
        ends_at=_dt(p["ends_at"]),
        topics=tuple(p.get("topics") or ()),
        participants=tuple(p.get("participants") or ()),
        changed_at=at,
    )


def fold_meetings(
    cycle_id: str, events: Iterable[LogEvent], *, upto_version: int | None = None
) -> dict[str, MeetingSnapshot]:
    """Every meeting of a cycle as it stood after event ``upto_version`` (all: None).

    ``events`` must be the cycle stream in version order; event types that do
    not touch the calendar are ignored.
    """
    out: dict[str, MeetingSnapshot] = {}
    for ev in events:
        if upto_version is not None and ev.version > upto_version:
            break
        p = ev.payload
        if ev.type == EventType.CYCLE_STARTED:
            for m in p.get("meetings", []):
                out[m["meeting_id"]] = _from_plan(cycle_id, m, ev.occurred_at)
        elif ev.type == EventType.MEETING_SCHEDULED:
            out[p["meeting_id"]] = _from_plan(cycle_id, p, ev.occurred_at)
        elif ev.type in _CHANGES and p.get("meeting_id") in out:
            m = out[p["meeting_id"]]
            m = replace(m, sequence=m.sequence + 1, changed_at=ev.occurred_at)
            if ev.type == EventType.MEETING_MOVED:
                m = replace(m, starts_at=_dt(p["starts_at"]), ends_at=_dt(p["ends_at"]))
            elif ev.type == EventType.HOST_SWAPPED:
                m = replace(m, host=p.get("host"))
            else:
                m = replace(m, cancelled=True)
            out[m.meeting_id] = m
        elif ev.type == EventType.CYCLE_CANCELLED:
            for mid, m in list(out.items()):
                if not m.cancelled:
                    out[mid] = replace(
                        m, cancelled=True, sequence=m.sequence + 1, changed_at=ev.occurred_at
                    )
    return out


def meeting_uid(cycle_id: str, meeting_id: str, domain: str) -> str:
    """The one UID a meeting keeps for life (ids are ``[A-Za-z0-9_-]``, safe here)."""
    return f"{cycle_id}.{meeting_id}@{domain}"


@dataclass(frozen=True)
class CalendarContext:
    """What the calendar needs beyond the meeting: names, the organiser, attendees."""

    domain: str
    organizer_email: str
    organizer_name: str = "peerlearn"
    cycle_title: str = ""
    partner_names: Mapping[str, str] = field(default_factory=dict)
    attendees: Sequence[tuple[str, str]] = ()  # (name, e-mail)


def summary(m: MeetingSnapshot, ctx: CalendarContext) -> str:
    title = m.title or m.kind.replace("_", " ").capitalize() or m.meeting_id
    return f"{title} ({ctx.cycle_title})" if ctx.cycle_title else title


def location(m: MeetingSnapshot, ctx: CalendarContext) -> str:
    if m.format == "online":
        return "Online"
    if m.host:
        return ctx.partner_names.get(m.host, m.host)
    return ""


def _vevent(m: MeetingSnapshot, ctx: CalendarContext, *, method: Method) -> Event:
    ev = Event()
    ev.add("uid", meeting_uid(m.cycle_id, m.meeting_id, ctx.domain))
    ev.add("sequence", m.sequence)
    ev.add("dtstamp", m.changed_at or m.starts_at)
    ev.add("dtstart", m.starts_at)
    ev.add("dtend", m.ends_at)
    ev.add("summary", summary(m, ctx))
    where = location(m, ctx)
    if where:
        ev.add("location", where)
    lines = [f"Meeting {m.meeting_id} ({m.kind.replace('_', ' ')})"]
    if m.host:
        lines.append(f"Host: {ctx.partner_names.get(m.host, m.host)}")
    if m.topics:
        lines.append("Topics: " + ", ".join(m.topics))
    ev.add("description", "\n".join(lines))
    cancelled = m.cancelled or method == "CANCEL"
    ev.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    if method != "PUBLISH":
        organizer = vCalAddress(f"mailto:{ctx.organizer_email}")
        organizer.params["cn"] = vText(ctx.organizer_name)
        ev.add("organizer", organizer)
        for name, email in ctx.attendees:
            att = vCalAddress(f"mailto:{email}")
            att.params["cn"] = vText(name)
            att.params["role"] = vText("REQ-PARTICIPANT")
            if method == "REQUEST":
                att.params["partstat"] = vText("NEEDS-ACTION")
                att.params["rsvp"] = vText("TRUE")
            ev.add("attendee", att, encode=False)
    return ev


def _calendar(method: Method | None, name: str | None = None) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if method is not None:
        cal.add("method", method)
    if name:
        cal.add("x-wr-calname", name)
    return cal


def invitation(m: MeetingSnapshot, ctx: CalendarContext) -> tuple[Method, bytes]:
    """The iTIP message for one meeting: REQUEST (new or changed), CANCEL (cancelled)."""
    method: Method = "CANCEL" if m.cancelled else "REQUEST"
    cal = _calendar(method)
    cal.add_component(_vevent(m, ctx, method=method))
    return method, cal.to_ical()


def feed(meetings: Iterable[MeetingSnapshot], ctx: CalendarContext, *, name: str) -> bytes:
    """A subscribable calendar of a cycle: every meeting, cancelled ones marked
    ``STATUS:CANCELLED`` (so a subscriber's entry disappears or greys out),
    no METHOD (RFC 5545 section 3.7.2: a published feed is not an iTIP message)."""
    cal = _calendar(None, name)
    for m in sorted(meetings, key=lambda x: (x.starts_at, x.meeting_id)):
        cal.add_component(_vevent(m, ctx, method="PUBLISH"))
    return cal.to_ical()
