"""The projectors: how each event of the vocabulary changes the read models.

:mod:`peerlearn.eventstore` is generic (append, read, a registry); this module
registers one projector per :class:`~peerlearn.events.EventType` with a read
model and declares the rest log-only, so an event type nobody handles is an
error at projection time instead of a silently missing row.

Projections never read the clock or anything outside the event and rows of its
own stream, which is what lets :func:`rebuild_projections` replay the whole log
into fresh tables and land on exactly the live state.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from peerlearn import writings
from peerlearn.events import EventType
from peerlearn.eventstore import (
    Conn,
    Event,
    after_each,
    no_read_model,
    outbox_id,
    project,
    projector,
)
from peerlearn.mining import curation as _curation
from peerlearn.privacy import note_text, open_field

# Tables derived from the log, in the order a rebuild copies them.
PROJECTION_TABLES = (
    "programmes",
    "cycles",
    "meetings",
    "notes",
    "outbox",
    "reports",
    "action_items",
    "self_assessments",
    "feedback_acknowledgements",
    "meeting_topic_proposals",
    "topic_votes",
    "meeting_focus_topics",
)
_PRIMARY_KEYS = {
    "programmes": "id",
    "cycles": "id",
    "meetings": "cycle_id, id",
    "notes": "id",
    "outbox": "id",
    "reports": "id",
    "action_items": "cycle_id, id",
    "self_assessments": "cycle_id, meeting_id",
    "feedback_acknowledgements": "cycle_id, meeting_id",
    "meeting_topic_proposals": "cycle_id, meeting_id",
    "topic_votes": "cycle_id, meeting_id, organisation",
    "meeting_focus_topics": "cycle_id, meeting_id",
}
_REBUILD_LOCK = 727_002


def _col(row: Any, name: str, index: int) -> Any:
    """A column of a row from a dict-row or a tuple-row cursor (callers' pools differ)."""
    return row[name] if isinstance(row, dict) else row[index]


# Events of a cycle's own stream (they move the cycle row's version).
CYCLE_STREAM = frozenset(
    {
        EventType.CYCLE_STARTED,
        EventType.CYCLE_PAUSED,
        EventType.CYCLE_RESUMED,
        EventType.CYCLE_CANCELLED,
        EventType.CYCLE_COMPLETED,
        EventType.MEETING_SCHEDULED,
        EventType.MEETING_MOVED,
        EventType.HOST_SWAPPED,
        EventType.MEETING_CANCELLED,
        EventType.MEETING_HELD,
        EventType.SELF_ASSESSMENT_REQUESTED,
        EventType.SELF_ASSESSMENT_SUBMITTED,
        EventType.PREPARATION_PACK_SENT,
        EventType.NOTES_SUBMITTED,
        EventType.NOTE_REJECTED,
        EventType.NOTE_CORRECTED,
        EventType.NOTE_WITHDRAWN,
        EventType.NOTE_VISIBILITY_CHANGED,
        EventType.NOTE_ERASED,
        EventType.REMINDER_SENT,
        EventType.NOTES_OVERDUE,
        EventType.NOTE_WINDOW_CLOSED,
        EventType.THEMES_UPDATED,
        EventType.WRAP_UP_PUBLISHED,
        EventType.FOLLOW_UP_DUE,
        EventType.ACTION_ITEM_ADDED,
        EventType.ACTION_ITEM_UPDATED,
        EventType.FEEDBACK_ACKNOWLEDGED,
        EventType.TOPICS_PROPOSED,
        EventType.TOPIC_VOTED,
        EventType.FOCUS_TOPICS_SET,
    }
)

# The mining stream's theme changes: the themes tables are written by the
# mining store directly (they are not rebuilt from the log), so these events
# are the audit trail only.
no_read_model(
    EventType.THEMES_MINED,
    EventType.THEME_CREATED,
    EventType.THEME_MERGED,
    EventType.THEME_SPLIT,
    EventType.THEME_RETIRED,
    EventType.THEME_CHANGED,
)
# A note the storage refused for good stays in the log (with the reason) only.
no_read_model(EventType.NOTE_REJECTED)

# Analyst curation (issue 11): each projector records the decision in the
# curation tables (migration 0016) and applies it to statements/themes/practices
# at once; the mining store re-applies the same state after every re-mine.
projector(EventType.THEME_RENAMED)(_curation.project_renamed)
projector(EventType.THEMES_MERGED_BY_ANALYST)(_curation.project_merged)
projector(EventType.STATEMENTS_MOVED)(_curation.project_moved)
projector(EventType.STATEMENT_KIND_CORRECTED)(_curation.project_kind)
projector(EventType.STATEMENT_HIDDEN)(_curation.project_hidden)


_STATUS_BY_TYPE: dict[EventType, str] = {
    EventType.CYCLE_PAUSED: "paused",
    EventType.CYCLE_RESUMED: "running",
    EventType.CYCLE_CANCELLED: "cancelled",
    EventType.CYCLE_COMPLETED: "completed",
}


async def _touch_cycle(conn: Conn, ev: Event, t: EventType) -> None:
    """Every event of a cycle's stream moves the cycle row's version (and its
    phase and status when the event carries them)."""
    if t not in CYCLE_STREAM or t == EventType.CYCLE_STARTED:
        return
    await conn.execute(
        "UPDATE cycles SET phase = COALESCE(%s, phase), status = COALESCE(%s, status),"
        " updated_at = %s, version = %s WHERE id = %s",
        (
            ev.payload.get("phase"),
            _STATUS_BY_TYPE.get(t),
            ev.occurred_at,
            ev.version,
            ev.stream_id,
        ),
    )


after_each(_touch_cycle)


async def _add_outbox(
    conn: Conn,
    ev: Event,
    *,
    kind: str,
    recipient: str,
    subject: str,
    meeting_id: str | None = None,
    extra: dict[str, Any] | None = None,
    suffix: str = "",
) -> list[str]:
    """One outbox row for ``ev``; ``suffix`` names a second row of the same event."""
    cur = await conn.execute("SELECT programme_id FROM cycles WHERE id = %s", (ev.stream_id,))
    row = await cur.fetchone()
    programme_id = _col(row, "programme_id", 0) if row else ""
    oid = outbox_id(ev) + (f":{suffix}" if suffix else "")
    payload = {
        "id": oid,
        "kind": kind,
        "cycle_id": ev.stream_id,
        "programme_id": programme_id,
        "meeting_id": meeting_id,
        "recipient": recipient,
        "subject": subject,
        "event": {
            "type": ev.type,
            "version": ev.version,
            "payload": writings.without_words(ev.type, ev.payload),
        },
        "created_at": ev.occurred_at.isoformat(),
        **(extra or {}),
    }
    await conn.execute(
        "INSERT INTO outbox (id, cycle_id, programme_id, kind, meeting_id, recipient, subject,"
        " payload, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            oid,
            ev.stream_id,
            programme_id,
            kind,
            meeting_id,
            recipient,
            subject,
            Jsonb(payload),
            ev.occurred_at,
        ),
    )
    return [oid]


@projector(EventType.PROGRAMME_CREATED)
async def _programme_created(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await conn.execute(
        "INSERT INTO programmes (id, name, description, time_zone, webhook_url, partners,"
        " facilitators, languages, created_at, updated_at, version, self_assessment_questions)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            p["id"],
            p["name"],
            p.get("description", ""),
            p["time_zone"],
            p.get("webhook_url"),
            Jsonb(p.get("partners", [])),
            Jsonb(p.get("facilitators", [])),
            Jsonb(p.get("languages", [])),
            ev.occurred_at,
            ev.occurred_at,
            ev.version,
            Jsonb(p.get("self_assessment_questions", [])),
        ),
    )
    return []


@projector(EventType.PROGRAMME_UPDATED)
async def _programme_updated(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    sets, params = [], []
    for col in ("name", "description", "time_zone", "webhook_url"):
        if col in p:
            sets.append(f"{col} = %s")
            params.append(p[col])
    for col in ("partners", "facilitators", "languages", "self_assessment_questions"):
        if col in p:
            sets.append(f"{col} = %s")
            params.append(Jsonb(p[col]))
    sets += ["updated_at = %s", "version = %s"]
    params += [ev.occurred_at, ev.version, p["id"]]
    await conn.execute(f"UPDATE programmes SET {', '.join(sets)} WHERE id = %s", params)
    return []


async def _insert_meeting(conn: Conn, cycle_id: str, m: dict[str, Any], at: datetime) -> None:
    await conn.execute(
        "INSERT INTO meetings (cycle_id, id, kind, title, host, format, starts_at, ends_at,"
        " topics, target_groups, participants, state, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'scheduled', %s)",
        (
            cycle_id,
            m["meeting_id"],
            m["kind"],
            m.get("title", ""),
            m.get("host"),
            m.get("format", "on_site"),
            m["starts_at"],
            m["ends_at"],
            Jsonb(m.get("topics", [])),
            Jsonb(m.get("target_groups", [])),
            Jsonb(m.get("participants", [])),
            at,
        ),
    )


@projector(EventType.CYCLE_STARTED)
async def _cycle_started(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await conn.execute(
        "INSERT INTO cycles (id, programme_id, workflow_id, title, phase, status, time_zone,"
        " partners, policies, ends_at, created_at, updated_at, version)"
        " VALUES (%s, %s, %s, %s, %s, 'running', %s, %s, %s, %s, %s, %s, %s)",
        (
            ev.stream_id,
            p["programme_id"],
            p["workflow_id"],
            p["title"],
            p["phase"],
            p["time_zone"],
            Jsonb(p["partners"]),
            Jsonb(p["policies"]),
            p["ends_at"],
            ev.occurred_at,
            ev.occurred_at,
            ev.version,
        ),
    )
    for m in p["meetings"]:
        await _insert_meeting(conn, ev.stream_id, m, ev.occurred_at)
    if p.get("imported"):  # history (peerlearn/importer.py): nobody is invited to the past
        return []
    # e-mail (peerlearn/mail.py): one calendar invitation per meeting and person
    return await _add_outbox(
        conn, ev, kind="invitation", recipient="participants", subject=f"Invitations: {p['title']}"
    )


async def _meeting(conn: Conn, ev: Event, sql_set: str, params: tuple[Any, ...]) -> None:
    await conn.execute(
        f"UPDATE meetings SET {sql_set}, updated_at = %s WHERE cycle_id = %s AND id = %s",
        (*params, ev.occurred_at, ev.stream_id, ev.payload["meeting_id"]),
    )


async def _tell_participants(conn: Conn, ev: Event, kind: str, subject: str) -> list[str]:
    """A change to the event's one meeting: its participants get one message
    of `kind` (peerlearn/mail.py renders it from the meeting's read row)."""
    return await _add_outbox(
        conn, ev, kind=kind, recipient="participants", subject=subject,
        meeting_id=ev.payload["meeting_id"],
    )  # fmt: skip


@projector(EventType.MEETING_SCHEDULED)
async def _meeting_scheduled(conn: Conn, ev: Event) -> list[str]:
    await _insert_meeting(conn, ev.stream_id, ev.payload, ev.occurred_at)
    if ev.payload.get("imported"):  # a past meeting from an import: no invitation
        return []
    return await _tell_participants(
        conn, ev, "invitation", f"Invitation: {ev.payload['meeting_id']}"
    )


@projector(EventType.MEETING_MOVED)
async def _meeting_moved(conn: Conn, ev: Event) -> list[str]:
    await _meeting(
        conn, ev, "starts_at = %s, ends_at = %s", (ev.payload["starts_at"], ev.payload["ends_at"])
    )
    p = ev.payload
    return await _tell_participants(
        conn, ev, "meeting_changed", f"Moved: {p['meeting_id']} to {p['starts_at']}"
    )


@projector(EventType.HOST_SWAPPED)
async def _host_swapped(conn: Conn, ev: Event) -> list[str]:
    await _meeting(
        conn, ev, "host = %s, self_assessment_requested_at = NULL", (ev.payload["host"],)
    )
    p = ev.payload
    return await _tell_participants(
        conn, ev, "meeting_changed", f"New host for {p['meeting_id']}: {p['host']}"
    )


@projector(EventType.MEETING_CANCELLED)
async def _meeting_cancelled(conn: Conn, ev: Event) -> list[str]:
    await _meeting(conn, ev, "state = 'cancelled', cancel_reason = %s", (ev.payload.get("reason"),))
    return await _tell_participants(
        conn, ev, "meeting_cancelled", f"Cancelled: {ev.payload['meeting_id']}"
    )


@projector(EventType.MEETING_HELD)
async def _meeting_held(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await _meeting(
        conn,
        ev,
        "state = 'held', held_at = %s, notes_due_at = %s",
        (p["held_at"], p["notes_due_at"]),
    )
    return []


@projector(EventType.SELF_ASSESSMENT_REQUESTED)
async def _self_assessment(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await _meeting(conn, ev, "self_assessment_requested_at = %s", (ev.occurred_at,))
    return await _add_outbox(
        conn,
        ev,
        kind="self_assessment",
        recipient=f"host:{p.get('host')}",
        subject=f"Self-assessment due before site visit {p['meeting_id']} ({p['due_at']})",
        meeting_id=p["meeting_id"],
    )


# The key of the per-meeting read rows that a later event replaces.
_MEETING_KEY = ("cycle_id", "meeting_id")


async def _upsert(conn: Conn, table: str, key: tuple[str, ...], row: dict[str, Any]) -> None:
    """Write `row` into `table`, replacing every non-key column of the row with
    the same `key`: the read rows where the latest event wins (answers,
    acknowledgements, ballots, votes, focus topics), so replaying the stream
    lands on the same row. Names are code constants, quoted as identifiers."""
    cols = [sql.Identifier(c) for c in row]
    query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO UPDATE SET {}").format(
        sql.Identifier(table),
        sql.SQL(", ").join(cols),
        sql.SQL(", ").join(sql.Placeholder() * len(cols)),
        sql.SQL(", ").join(sql.Identifier(k) for k in key),
        sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in row if c not in key
        ),
    )
    await conn.execute(query, list(row.values()))


@projector(EventType.SELF_ASSESSMENT_SUBMITTED)
async def _self_assessment_submitted(conn: Conn, ev: Event) -> list[str]:
    """The host's answers (issue 13); a later submission replaces an earlier one."""
    p = await writings.opened(conn, ev.stream_id, EventType.SELF_ASSESSMENT_SUBMITTED, ev.payload)
    if p["answers"] is None:  # erased: its key is gone
        return []
    await _upsert(conn, "self_assessments", _MEETING_KEY, {
        "cycle_id": ev.stream_id, "meeting_id": p["meeting_id"], "host": p["host"],
        "language": p.get("language", "en"), "answers": Jsonb(p["answers"]),
        "submitted_by": p.get("submitted_by"), "submitted_at": ev.occurred_at,
        "version": ev.version,
    })  # fmt: skip
    return []


@projector(EventType.PREPARATION_PACK_SENT)
async def _prep_pack(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await _meeting(conn, ev, "prep_sent_at = %s", (ev.occurred_at,))
    await _freeze_topic_vote(conn, ev.stream_id, p["meeting_id"], ev.occurred_at)
    return await _add_outbox(
        conn,
        ev,
        kind="preparation_pack",
        recipient="participants",
        subject=f"Preparation pack: {p.get('title') or p['meeting_id']} on {p['starts_at']}",
        meeting_id=p["meeting_id"],
    ) + await _host_row(conn, ev, "self_assessment_reminder", "Self-assessment reminder")


@projector(EventType.REMINDER_SENT)
async def _reminder(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await _meeting(conn, ev, "reminders_sent = %s", (p["reminder"],))
    return await _add_outbox(
        conn,
        ev,
        kind="reminder",
        recipient="partners",
        subject=f"Reminder {p['reminder']}: notes for {p['meeting_id']} due {p['notes_due_at']}",
        meeting_id=p["meeting_id"],
    )


@projector(EventType.NOTES_OVERDUE)
async def _overdue(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await _meeting(
        conn, ev, "window_closed_at = %s, escalated_at = %s", (ev.occurred_at, ev.occurred_at)
    )
    return await _add_outbox(
        conn,
        ev,
        kind="escalation",
        recipient="programme_manager",
        subject=f"Notes overdue for {p['meeting_id']}: {p['note_count']} of {p['expected']} in",
        meeting_id=p["meeting_id"],
    ) + await _feedback(conn, ev)


@projector(EventType.NOTE_WINDOW_CLOSED)
async def _window_closed(conn: Conn, ev: Event) -> list[str]:
    await _meeting(conn, ev, "window_closed_at = %s", (ev.occurred_at,))
    return await _feedback(conn, ev)


async def _feedback(conn: Conn, ev: Event) -> list[str]:
    """Issue 13: when a site visit's note window closes (the policy's days after
    the visit), the host gets the peers' feedback (compiled at delivery,
    peerlearn/feedback.py)."""
    return await _host_row(conn, ev, "feedback", "Feedback from the peers")


async def _host_row(conn: Conn, ev: Event, kind: str, subject: str) -> list[str]:
    """A second outbox row of ``ev`` for a site visit's host (issue 13: feedback;
    the self-assessment reminder, mailed only if the answers are still missing)."""
    mid = ev.payload["meeting_id"]
    cur = await conn.execute(
        "SELECT kind, host FROM meetings WHERE cycle_id = %s AND id = %s", (ev.stream_id, mid)
    )
    row = await cur.fetchone()
    if row is None or _col(row, "kind", 0) != "site_visit" or not _col(row, "host", 1):
        return []
    host = _col(row, "host", 1)
    return await _add_outbox(
        conn, ev, kind=kind, recipient=f"host:{host}", subject=f"{subject}: {mid}",
        meeting_id=mid, suffix=kind,
    )  # fmt: skip


@projector(EventType.FEEDBACK_ACKNOWLEDGED)
async def _feedback_acknowledged(conn: Conn, ev: Event) -> list[str]:
    p = await writings.opened(conn, ev.stream_id, EventType.FEEDBACK_ACKNOWLEDGED, ev.payload)
    await _upsert(conn, "feedback_acknowledgements", _MEETING_KEY, {
        "cycle_id": ev.stream_id, "meeting_id": p["meeting_id"], "acknowledged_by": p.get("by"),
        "acknowledged_at": ev.occurred_at, "note": p.get("note"),
    })  # fmt: skip
    return []


# ---------------------------------------------------------------- topic voting (issue 13)


@projector(EventType.TOPICS_PROPOSED)
async def _topics_proposed(conn: Conn, ev: Event) -> list[str]:
    """A new ballot replaces the old one; votes for topics no longer on it lapse."""
    p = ev.payload
    await _upsert(conn, "meeting_topic_proposals", _MEETING_KEY, {
        "cycle_id": ev.stream_id, "meeting_id": p["meeting_id"], "topics": Jsonb(p["topics"]),
        "proposed_by": p.get("by"), "proposed_at": ev.occurred_at,
    })  # fmt: skip
    await conn.execute(
        "DELETE FROM topic_votes WHERE cycle_id = %s AND meeting_id = %s"
        " AND NOT (%s::jsonb ? topic)",
        (ev.stream_id, p["meeting_id"], Jsonb(p["topics"])),
    )
    return []


@projector(EventType.TOPIC_VOTED)
async def _topic_voted(conn: Conn, ev: Event) -> list[str]:
    """One vote per organisation and meeting: a later vote replaces the earlier."""
    p = ev.payload
    await _upsert(conn, "topic_votes", (*_MEETING_KEY, "organisation"), {
        "cycle_id": ev.stream_id, "meeting_id": p["meeting_id"],
        "organisation": p["organisation"], "topic": p["topic"], "voted_by": p.get("by"),
        "voted_at": ev.occurred_at,
    })  # fmt: skip
    return []


@projector(EventType.FOCUS_TOPICS_SET)
async def _focus_topics_set(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await _write_focus(
        conn, ev.stream_id, p["meeting_id"], p["topics"], p.get("counts") or {}, "manager",
        ev.occurred_at,
    )  # fmt: skip
    return []


async def _write_focus(
    conn: Conn,
    cycle_id: str,
    meeting_id: str,
    topics: list[str],
    counts: dict[str, int],
    source: str,
    at: datetime,
) -> None:
    await _upsert(conn, "meeting_focus_topics", _MEETING_KEY, {
        "cycle_id": cycle_id, "meeting_id": meeting_id, "topics": Jsonb(topics),
        "counts": Jsonb(counts), "source": source, "set_at": at,
    })  # fmt: skip


async def _freeze_topic_vote(conn: Conn, cycle_id: str, meeting_id: str, at: datetime) -> None:
    """The preparation pack closes the vote: unless the manager already set the
    focus topics, the vote's winners become them (all topics tied for the most
    votes, in ballot order). Derived from rows of the same stream only, so a
    rebuild lands on the same focus topics."""
    cur = await conn.execute(
        "SELECT 1 FROM meeting_focus_topics WHERE cycle_id = %s AND meeting_id = %s",
        (cycle_id, meeting_id),
    )
    if await cur.fetchone() is not None:
        return
    cur = await conn.execute(
        "SELECT topics FROM meeting_topic_proposals WHERE cycle_id = %s AND meeting_id = %s",
        (cycle_id, meeting_id),
    )
    row = await cur.fetchone()
    if row is None:
        return
    ballot: list[str] = list(_col(row, "topics", 0))
    cur = await conn.execute(
        "SELECT topic FROM topic_votes WHERE cycle_id = %s AND meeting_id = %s",
        (cycle_id, meeting_id),
    )
    counts = tally(ballot, [_col(r, "topic", 0) for r in await cur.fetchall()])
    winners = winning_topics(ballot, counts)
    if winners:
        await _write_focus(conn, cycle_id, meeting_id, winners, counts, "votes", at)


def tally(ballot: list[str], votes: list[str]) -> dict[str, int]:
    """Votes per ballot topic (0 for none), in ballot order."""
    counts = dict.fromkeys(ballot, 0)
    for v in votes:
        if v in counts:
            counts[v] += 1
    return counts


def winning_topics(ballot: list[str], counts: dict[str, int]) -> list[str]:
    """Every topic with the most votes (ties all win), in ballot order; none without votes."""
    best = max(counts.values(), default=0)
    return [t for t in ballot if best > 0 and counts.get(t, 0) == best]


@projector(EventType.NOTES_SUBMITTED)
async def _notes_submitted(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    text = await note_text(conn, p)  # sealed in the log (issue 12)
    if text is None:  # erased: its key is gone, the event is a tombstone
        return []
    await conn.execute(
        "INSERT INTO notes (id, cycle_id, programme_id, meeting_id, author_organisation, language,"
        " text, format, client_key, submitted_by, submitted_at, author_person)"
        " SELECT %s, %s, c.programme_id, %s, %s, %s, %s, %s, %s, %s, %s, %s"
        " FROM cycles c WHERE c.id = %s",
        (
            p["note_id"],
            ev.stream_id,
            p["meeting_id"],
            p["author_organisation"],
            p["language"],
            text,
            p.get("format", "text"),
            p["client_key"],
            p.get("submitted_by"),
            ev.occurred_at,
            await open_field(conn, p, "author_person"),
            ev.stream_id,
        ),
    )
    await _meeting(conn, ev, "note_count = note_count + 1", ())
    return []


@projector(EventType.NOTE_CORRECTED)
async def _note_corrected(conn: Conn, ev: Event) -> list[str]:
    """A new version of the text; statement_count NULL again so the note
    reconciliation mines the new text (the command removed the old statements)."""
    p = ev.payload
    text = await note_text(conn, p)
    if text is None:
        return []
    await conn.execute(
        "UPDATE notes SET text = %s, language = %s, format = %s, version = %s,"
        " corrected_at = %s, statement_count = NULL, theme_ids = '[]' WHERE id = %s",
        (text, p["language"], p.get("format", "text"), p["version"], ev.occurred_at, p["note_id"]),
    )
    return []


@projector(EventType.NOTE_WITHDRAWN, EventType.NOTE_ERASED)
async def _note_gone(conn: Conn, ev: Event) -> list[str]:
    cur = await conn.execute("DELETE FROM notes WHERE id = %s", (ev.payload["note_id"],))
    if cur.rowcount and ev.payload.get("meeting_id"):
        await _meeting(conn, ev, "note_count = greatest(note_count - 1, 0)", ())
    return []


@projector(EventType.NOTE_VISIBILITY_CHANGED)
async def _note_visibility(conn: Conn, ev: Event) -> list[str]:
    await conn.execute(
        "UPDATE notes SET visibility = %s WHERE id = %s",
        (ev.payload["visibility"], ev.payload["note_id"]),
    )
    return []


@projector(EventType.THEMES_UPDATED)
async def _themes(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await conn.execute(
        "UPDATE notes SET theme_ids = %s, statement_count = %s WHERE id = %s",
        (Jsonb(p.get("theme_ids", [])), p.get("statement_count"), p["note_id"]),
    )
    await _meeting(
        conn,
        ev,
        "theme_ids = (SELECT COALESCE(jsonb_agg(DISTINCT t ORDER BY t), '[]'::jsonb) FROM"
        " jsonb_array_elements_text(meetings.theme_ids || %s::jsonb) AS t)",
        (Jsonb(p.get("theme_ids", [])),),
    )
    return []


@projector(EventType.CYCLE_PAUSED, EventType.CYCLE_COMPLETED)
async def _status_only(conn: Conn, ev: Event) -> list[str]:
    """Nothing beyond the cycle row's status, which :func:`_touch_cycle` sets
    for every cycle event; registered so the type is known, not skipped."""
    return []


@projector(EventType.CYCLE_RESUMED)
async def _resumed(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    for mid, due in (p.get("notes_due_at") or {}).items():
        await conn.execute(
            "UPDATE meetings SET notes_due_at = %s, updated_at = %s"
            " WHERE cycle_id = %s AND id = %s",
            (due, ev.occurred_at, ev.stream_id, mid),
        )
    if p.get("follow_up_at"):
        await conn.execute(
            "UPDATE cycles SET follow_up_at = %s WHERE id = %s", (p["follow_up_at"], ev.stream_id)
        )
    return []


@projector(EventType.CYCLE_CANCELLED)
async def _cancelled(conn: Conn, ev: Event) -> list[str]:
    await conn.execute(
        "UPDATE cycles SET cancel_reason = %s WHERE id = %s",
        (ev.payload.get("reason"), ev.stream_id),
    )
    return []


@projector(EventType.WRAP_UP_PUBLISHED)
async def _wrapup(conn: Conn, ev: Event) -> list[str]:
    p = await writings.opened(conn, ev.stream_id, EventType.WRAP_UP_PUBLISHED, ev.payload)
    cur = await conn.execute("SELECT programme_id FROM cycles WHERE id = %s", (ev.stream_id,))
    row = await cur.fetchone()
    programme_id = _col(row, "programme_id", 0) if row else ""
    if p["report"] is not None:  # else a note it quoted was erased: rendered on demand
        await conn.execute(
            "INSERT INTO reports (id, cycle_id, programme_id, kind, content, markdown,"
            " created_at) VALUES (%s, %s, %s, 'wrapup', %s, %s, %s)",
            (
                p["report_id"],
                ev.stream_id,
                programme_id,
                Jsonb(p["report"]),
                p["markdown"],
                ev.occurred_at,
            ),
        )
    for item in p.get("action_items", []):
        if item["what"] is None:  # the line of an erased note
            continue
        await conn.execute(
            "INSERT INTO action_items (cycle_id, id, owner, what, due_at, status, meeting_id,"
            " created_at) VALUES (%s, %s, %s, %s, %s, 'open', %s, %s)",
            (
                ev.stream_id,
                item["id"],
                item["owner"],
                item["what"],
                item.get("due_at"),
                item.get("meeting_id"),
                ev.occurred_at,
            ),
        )
    await conn.execute(
        "UPDATE cycles SET report_id = %s, follow_up_at = %s WHERE id = %s",
        (p["report_id"], p.get("follow_up_at"), ev.stream_id),
    )
    return await _add_outbox(
        conn,
        ev,
        kind="wrapup_published",
        recipient="participants",
        subject=f"Wrap-up report published for cycle {ev.stream_id}",
        extra={"report_id": p["report_id"]},
    )


@projector(EventType.ACTION_ITEM_ADDED)
async def _action_item_added(conn: Conn, ev: Event) -> list[str]:
    """An action plan's item (issue 13), maybe answering a recommendation."""
    p = await writings.opened(conn, ev.stream_id, EventType.ACTION_ITEM_ADDED, ev.payload)
    if p["what"] is None:  # erased with its owner or writer
        return []
    await conn.execute(
        "INSERT INTO action_items (cycle_id, id, owner, what, due_at, status, meeting_id,"
        " created_at, recommendation, progress, created_by, updated_at)"
        " VALUES (%s, %s, %s, %s, %s, 'open', %s, %s, %s, '[]', %s, %s)",
        (
            ev.stream_id,
            p["item_id"],
            p["owner"],
            p["what"],
            p.get("due_at"),
            p.get("meeting_id"),
            ev.occurred_at,
            Jsonb(p["recommendation"]) if p.get("recommendation") else None,
            p.get("by"),
            ev.occurred_at,
        ),
    )
    return []


@projector(EventType.ACTION_ITEM_UPDATED)
async def _action_item_updated(conn: Conn, ev: Event) -> list[str]:
    """A status change, a new due date or owner, and the progress note with it."""
    p = await writings.opened(conn, ev.stream_id, EventType.ACTION_ITEM_UPDATED, ev.payload)
    if "note" in p and p["note"] is None:  # the progress note was erased
        del p["note"]
    entry = {"at": ev.occurred_at.isoformat(), "by": p.get("by")}
    entry.update({k: p[k] for k in ("status", "note", "due_at", "owner") if k in p})
    await conn.execute(
        "UPDATE action_items SET status = COALESCE(%s, status),"
        " due_at = CASE WHEN %s THEN %s::timestamptz ELSE due_at END,"
        " owner = COALESCE(%s, owner), progress = progress || %s::jsonb, updated_at = %s"
        " WHERE cycle_id = %s AND id = %s",
        (
            p.get("status"),
            "due_at" in p,
            p.get("due_at"),
            p.get("owner"),
            Jsonb([entry]),
            ev.occurred_at,
            ev.stream_id,
            p["item_id"],
        ),
    )
    return []


@projector(EventType.FOLLOW_UP_DUE)
async def _follow_up(conn: Conn, ev: Event) -> list[str]:
    cur = await conn.execute(
        "SELECT count(*) AS n FROM action_items WHERE cycle_id = %s AND status = 'open'",
        (ev.stream_id,),
    )
    row = await cur.fetchone()
    open_items = int(_col(row, "n", 0)) if row else 0
    return await _add_outbox(
        conn,
        ev,
        kind="follow_up",
        recipient="programme_manager",
        subject=f"Follow-up check for cycle {ev.stream_id}: {open_items} open action items",
        extra={"open_action_items": open_items},
    ) + await _overdue_escalation(conn, ev)


async def _overdue_escalation(conn: Conn, ev: Event) -> list[str]:
    """Action items past due and not done/dropped when the follow-up comes due
    are escalated (an ``action_overdue`` row: managers and the owners' contacts)."""
    cur = await conn.execute(
        "SELECT count(*) AS n FROM action_items WHERE cycle_id = %s"
        " AND status NOT IN ('done', 'dropped') AND due_at IS NOT NULL AND due_at < %s",
        (ev.stream_id, ev.occurred_at),
    )
    row = await cur.fetchone()
    overdue = int(_col(row, "n", 0)) if row else 0
    if not overdue:
        return []
    return await _add_outbox(
        conn,
        ev,
        kind="action_overdue",
        recipient="programme_manager",
        subject=f"Overdue action items in cycle {ev.stream_id}: {overdue}",
        extra={"overdue_action_items": overdue},
        suffix="overdue",
    )


# ---------------------------------------------------------------- rebuild


async def arebuild_projections(conninfo: str, *, into_live: bool = True) -> dict[str, int]:
    """Replay the whole log, in order, into fresh copies of the projection
    tables; with ``into_live`` swap them in (same transaction, appends wait).

    Returns row counts per rebuilt table.
    """
    schema = "projections_rebuild"
    conn = await psycopg.AsyncConnection.connect(conninfo, row_factory=dict_row)
    async with conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_REBUILD_LOCK,))
        await conn.execute("LOCK TABLE events IN SHARE MODE")
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await conn.execute(f"CREATE SCHEMA {schema}")
        for t in PROJECTION_TABLES:
            await conn.execute(f"CREATE TABLE {schema}.{t} (LIKE public.{t} INCLUDING ALL)")
        await conn.execute(f"SET LOCAL search_path TO {schema}, public")
        async with conn.cursor(row_factory=dict_row, name="replay") as cur:
            await cur.execute(
                "SELECT global_position, stream_id, version, type, payload, occurred_at,"
                " idempotency_key, recorded_at FROM public.events ORDER BY global_position"
            )
            batch: list[dict[str, Any]] = []
            while True:
                batch = await cur.fetchmany(500)
                if not batch:
                    break
                for r in batch:
                    await project(conn, Event(**r))
        counts = {}
        for t in PROJECTION_TABLES:
            c = await (await conn.execute(f"SELECT count(*) AS n FROM {schema}.{t}")).fetchone()
            counts[t] = int(c["n"]) if c else 0
        await conn.execute("SET LOCAL search_path TO public")
        if into_live:
            for t in PROJECTION_TABLES:
                await conn.execute(f"DELETE FROM public.{t}")
                await conn.execute(f"INSERT INTO public.{t} SELECT * FROM {schema}.{t}")
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    return counts


def rebuild_projections(conninfo: str) -> dict[str, int]:
    """Synchronous entry point for the CLI."""
    return asyncio.run(arebuild_projections(conninfo))


async def snapshot(conn: Conn, schema: str = "public") -> dict[str, list[dict[str, Any]]]:
    """Every projection row, ordered by key, JSON-normalised: for equality checks."""
    out: dict[str, list[dict[str, Any]]] = {}
    for t in PROJECTION_TABLES:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"SELECT * FROM {schema}.{t} ORDER BY {_PRIMARY_KEYS[t]}")
            rows = await cur.fetchall()
        out[t] = [json.loads(json.dumps(r, default=str, sort_keys=True)) for r in rows]
    return out
