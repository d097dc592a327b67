"""The append-only event log and the projections that derive the read models.

One function writes events: :func:`append`. It locks the stream's head row,
refuses nothing but duplicates (an idempotency key already stored returns the
stored event, so a retried activity never writes twice), gives the event the
next gap-free version, and applies the projection in the same transaction, so
the read models are never behind or ahead of the log.

Projections never read the clock or anything outside the event and rows of its
own stream, which is what lets :func:`rebuild_projections` replay the whole log
into fresh tables and land on exactly the live state.

Streams: ``programme:<id>`` for programmes (written by the API), ``<cycle id>``
for cycles (written by the cycle workflow's activities).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

Conn = psycopg.AsyncConnection[Any]

# Tables derived from the log, in the order a rebuild copies them.
PROJECTION_TABLES = (
    "programmes",
    "cycles",
    "meetings",
    "notes",
    "outbox",
    "reports",
    "action_items",
)
_PRIMARY_KEYS = {
    "programmes": "id",
    "cycles": "id",
    "meetings": "cycle_id, id",
    "notes": "id",
    "outbox": "id",
    "reports": "id",
    "action_items": "cycle_id, id",
}
_REBUILD_LOCK = 727_002


def programme_stream(programme_id: str) -> str:
    return f"programme:{programme_id}"


@dataclass
class Event:
    global_position: int
    stream_id: str
    version: int
    type: str
    payload: dict[str, Any]
    occurred_at: datetime
    idempotency_key: str
    recorded_at: datetime | None = None


@dataclass
class AppendResult:
    event: Event
    duplicate: bool = False
    outbox_ids: list[str] = field(default_factory=list)


class StreamExists(Exception):
    """The stream already has events (a create that must be the first one)."""


async def append(
    conn: Conn,
    *,
    stream_id: str,
    type: str,
    payload: dict[str, Any],
    idempotency_key: str,
    occurred_at: datetime,
    expect_new_stream: bool = False,
) -> AppendResult:
    """Append one event and project it, inside the caller's transaction."""
    await conn.execute(
        "INSERT INTO event_streams (stream_id) VALUES (%s) ON CONFLICT DO NOTHING", (stream_id,)
    )
    cur = await conn.execute(
        "SELECT version FROM event_streams WHERE stream_id = %s FOR UPDATE", (stream_id,)
    )
    head = await cur.fetchone()
    assert head is not None
    # Checked after the lock: one key always maps to one stream, so the lock
    # serialises two concurrent attempts with the same key.
    existing = await _event_by_key(conn, idempotency_key)
    if existing is not None:
        return AppendResult(existing, duplicate=True, outbox_ids=await _outbox_ids(conn, existing))
    version = int(_col(head, "version", 0)) + 1
    if expect_new_stream and version != 1:
        raise StreamExists(stream_id)
    cur = await conn.execute(
        "INSERT INTO events (stream_id, version, type, payload, occurred_at, idempotency_key)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING global_position, recorded_at",
        (stream_id, version, type, Jsonb(payload), occurred_at, idempotency_key),
    )
    row = await cur.fetchone()
    assert row is not None
    await conn.execute(
        "UPDATE event_streams SET version = %s WHERE stream_id = %s", (version, stream_id)
    )
    event = Event(
        global_position=int(_col(row, "global_position", 0)),
        stream_id=stream_id,
        version=version,
        type=type,
        payload=payload,
        occurred_at=occurred_at,
        idempotency_key=idempotency_key,
        recorded_at=_col(row, "recorded_at", 1),
    )
    outbox = await project(conn, event)
    return AppendResult(event, outbox_ids=outbox)


async def append_event(pool: AsyncConnectionPool, **kwargs: Any) -> AppendResult:
    """:func:`append` in a transaction of its own."""
    async with pool.connection() as conn, conn.transaction():
        return await append(conn, **kwargs)


async def read_stream(
    conn: Conn, stream_id: str, *, after_version: int = 0, limit: int | None = None
) -> list[Event]:
    sql = (
        "SELECT global_position, stream_id, version, type, payload, occurred_at, idempotency_key,"
        " recorded_at FROM events WHERE stream_id = %s AND version > %s ORDER BY version"
    )
    params: list[Any] = [stream_id, after_version]
    if limit is not None:
        sql += " LIMIT %s"
        params.append(limit)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return [Event(**r) for r in await cur.fetchall()]


def _col(row: Any, name: str, index: int) -> Any:
    return row[name] if isinstance(row, dict) else row[index]


async def _event_by_key(conn: Conn, key: str) -> Event | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT global_position, stream_id, version, type, payload, occurred_at,"
            " idempotency_key, recorded_at FROM events WHERE idempotency_key = %s",
            (key,),
        )
        row = await cur.fetchone()
    return Event(**row) if row else None


async def _outbox_ids(conn: Conn, ev: Event) -> list[str]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT id FROM outbox WHERE id = %s", (outbox_id(ev),))
        return [r["id"] for r in await cur.fetchall()]


def outbox_id(ev: Event) -> str:
    return f"{ev.stream_id}:{ev.version}"


# ---------------------------------------------------------------- projections

Projector = Callable[[Conn, Event], Awaitable[list[str]]]
_PROJECTORS: dict[str, Projector] = {}


def projector(*types: str) -> Callable[[Projector], Projector]:
    def deco(fn: Projector) -> Projector:
        for t in types:
            _PROJECTORS[t] = fn
        return fn

    return deco


async def project(conn: Conn, ev: Event) -> list[str]:
    """Apply one event to the read models; returns the outbox ids it created."""
    out: list[str] = []
    fn = _PROJECTORS.get(ev.type)
    if fn is not None:
        out = await fn(conn, ev)
    if not ev.stream_id.startswith("programme:") and ev.type != "CycleStarted":
        await _touch_cycle(conn, ev)
    return out


_STATUS_BY_TYPE = {
    "CyclePaused": "paused",
    "CycleResumed": "running",
    "CycleCancelled": "cancelled",
    "CycleCompleted": "completed",
}


async def _touch_cycle(conn: Conn, ev: Event) -> None:
    await conn.execute(
        "UPDATE cycles SET phase = COALESCE(%s, phase), status = COALESCE(%s, status),"
        " updated_at = %s, version = %s WHERE id = %s",
        (
            ev.payload.get("phase"),
            _STATUS_BY_TYPE.get(ev.type),
            ev.occurred_at,
            ev.version,
            ev.stream_id,
        ),
    )


async def _add_outbox(
    conn: Conn,
    ev: Event,
    *,
    kind: str,
    recipient: str,
    subject: str,
    meeting_id: str | None = None,
    extra: dict[str, Any] | None = None,
) -> list[str]:
    cur = await conn.execute("SELECT programme_id FROM cycles WHERE id = %s", (ev.stream_id,))
    row = await cur.fetchone()
    programme_id = _col(row, "programme_id", 0) if row else ""
    oid = outbox_id(ev)
    payload = {
        "id": oid,
        "kind": kind,
        "cycle_id": ev.stream_id,
        "programme_id": programme_id,
        "meeting_id": meeting_id,
        "recipient": recipient,
        "subject": subject,
        "event": {"type": ev.type, "version": ev.version, "payload": ev.payload},
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


@projector("ProgrammeCreated")
async def _programme_created(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await conn.execute(
        "INSERT INTO programmes (id, name, description, time_zone, webhook_url, partners,"
        " facilitators, languages, created_at, updated_at, version)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
        ),
    )
    return []


@projector("ProgrammeUpdated")
async def _programme_updated(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    sets, params = [], []
    for col in ("name", "description", "time_zone", "webhook_url"):
        if col in p:
            sets.append(f"{col} = %s")
            params.append(p[col])
    for col in ("partners", "facilitators", "languages"):
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


@projector("CycleStarted")
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
    return []


async def _meeting(conn: Conn, ev: Event, sql_set: str, params: tuple[Any, ...]) -> None:
    await conn.execute(
        f"UPDATE meetings SET {sql_set}, updated_at = %s WHERE cycle_id = %s AND id = %s",
        (*params, ev.occurred_at, ev.stream_id, ev.payload["meeting_id"]),
    )


@projector("MeetingScheduled")
async def _meeting_scheduled(conn: Conn, ev: Event) -> list[str]:
    await _insert_meeting(conn, ev.stream_id, ev.payload, ev.occurred_at)
    return []


@projector("MeetingMoved")
async def _meeting_moved(conn: Conn, ev: Event) -> list[str]:
    await _meeting(
        conn, ev, "starts_at = %s, ends_at = %s", (ev.payload["starts_at"], ev.payload["ends_at"])
    )
    return []


@projector("HostSwapped")
async def _host_swapped(conn: Conn, ev: Event) -> list[str]:
    await _meeting(
        conn, ev, "host = %s, self_assessment_requested_at = NULL", (ev.payload["host"],)
    )
    return []


@projector("MeetingCancelled")
async def _meeting_cancelled(conn: Conn, ev: Event) -> list[str]:
    await _meeting(conn, ev, "state = 'cancelled', cancel_reason = %s", (ev.payload.get("reason"),))
    return []


@projector("MeetingHeld")
async def _meeting_held(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await _meeting(
        conn,
        ev,
        "state = 'held', held_at = %s, notes_due_at = %s",
        (p["held_at"], p["notes_due_at"]),
    )
    return []


@projector("SelfAssessmentRequested")
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


@projector("PreparationPackSent")
async def _prep_pack(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await _meeting(conn, ev, "prep_sent_at = %s", (ev.occurred_at,))
    return await _add_outbox(
        conn,
        ev,
        kind="preparation_pack",
        recipient="participants",
        subject=f"Preparation pack: {p.get('title') or p['meeting_id']} on {p['starts_at']}",
        meeting_id=p["meeting_id"],
    )


@projector("ReminderSent")
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


@projector("NotesOverdue")
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
    )


@projector("NoteWindowClosed")
async def _window_closed(conn: Conn, ev: Event) -> list[str]:
    await _meeting(conn, ev, "window_closed_at = %s", (ev.occurred_at,))
    return []


@projector("NotesSubmitted")
async def _notes_submitted(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    await conn.execute(
        "INSERT INTO notes (id, cycle_id, programme_id, meeting_id, author_organisation, language,"
        " text, format, client_key, submitted_by, submitted_at)"
        " SELECT %s, %s, c.programme_id, %s, %s, %s, %s, %s, %s, %s, %s"
        " FROM cycles c WHERE c.id = %s",
        (
            p["note_id"],
            ev.stream_id,
            p["meeting_id"],
            p["author_organisation"],
            p["language"],
            p["text"],
            p.get("format", "text"),
            p["client_key"],
            p.get("submitted_by"),
            ev.occurred_at,
            ev.stream_id,
        ),
    )
    await _meeting(conn, ev, "note_count = note_count + 1", ())
    return []


@projector("ThemesUpdated")
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


@projector("CycleResumed")
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


@projector("CycleCancelled")
async def _cancelled(conn: Conn, ev: Event) -> list[str]:
    await conn.execute(
        "UPDATE cycles SET cancel_reason = %s WHERE id = %s",
        (ev.payload.get("reason"), ev.stream_id),
    )
    return []


@projector("WrapUpPublished")
async def _wrapup(conn: Conn, ev: Event) -> list[str]:
    p = ev.payload
    cur = await conn.execute("SELECT programme_id FROM cycles WHERE id = %s", (ev.stream_id,))
    row = await cur.fetchone()
    programme_id = _col(row, "programme_id", 0) if row else ""
    await conn.execute(
        "INSERT INTO reports (id, cycle_id, programme_id, kind, content, markdown, created_at)"
        " VALUES (%s, %s, %s, 'wrapup', %s, %s, %s)",
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


@projector("FollowUpDue")
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
