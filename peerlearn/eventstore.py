"""The append-only event log: one writer, one reader, one projector registry.

One function writes events: :func:`append`. It locks the stream's head row,
refuses nothing but duplicates (an idempotency key already stored returns the
stored event, so a retried activity never writes twice), gives the event the
next gap-free version, and applies the projection in the same transaction, so
the read models are never behind or ahead of the log.

This module knows nothing about cycles or programmes: the projectors that turn
events into read models live in :mod:`peerlearn.projections` and register here
by :class:`peerlearn.events.EventType`. Every type in the vocabulary must have
a projector or be registered as having no read model; an event whose type has
neither is :class:`peerlearn.events.UnknownEventType`, never silently skipped
(a typo would otherwise be a projection that quietly never happens).

Streams: ``programme:<id>`` for programmes (written by the API), ``<cycle id>``
for cycles (written by the cycle workflow's activities), ``mining`` for theme
changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from peerlearn.events import EventType, UnknownEventType, event_type

Conn = psycopg.AsyncConnection[Any]


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
    """Append one event and project it, inside the caller's transaction.

    ``type`` is an :class:`EventType` (a plain string is checked against the
    vocabulary before anything is written, so an unknown name never reaches
    the log: :class:`UnknownEventType`).
    """
    t = event_type(type)
    type = t.value  # noqa: A001  (the stored column's name)
    _load_projections()  # registers the storage transforms too
    transform = _STORAGE_TRANSFORMS.get(t)
    stored = await transform(conn, t, stream_id, payload) if transform is not None else payload
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
        (stream_id, version, type, Jsonb(stored), occurred_at, idempotency_key),
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


# ---------------------------------------------------------------- projector registry

Projector = Callable[[Conn, Event], Awaitable[list[str]]]
"""Applies one event to the read models; returns the outbox ids it created."""

_PROJECTORS: dict[EventType, Projector] = {}
_NO_READ_MODEL: set[EventType] = set()
_AFTER_EACH: list[Callable[[Conn, Event, EventType], Awaitable[None]]] = []


def projector(*types: EventType) -> Callable[[Projector], Projector]:
    """Register the decorated function as the projector of ``types``.

    One projector per type: registering a second is a programming error, so
    two modules can never both think they own a read model.
    """

    def deco(fn: Projector) -> Projector:
        for t in types:
            if t in _PROJECTORS or t in _NO_READ_MODEL:
                raise ValueError(f"{t.value} already has a projector")
            _PROJECTORS[t] = fn
        return fn

    return deco


def no_read_model(*types: EventType) -> None:
    """Declare that ``types`` are kept in the log only (no table derives from
    them), so :func:`project` accepts them instead of raising."""
    for t in types:
        if t in _PROJECTORS:
            raise ValueError(f"{t.value} has a projector")
        _NO_READ_MODEL.add(t)


#: (connection, type, stream id, payload as given) -> payload as stored
StorageTransform = Callable[[Conn, EventType, str, dict[str, Any]], Awaitable[dict[str, Any]]]
_STORAGE_TRANSFORMS: dict[EventType, StorageTransform] = {}


def storage_transform(*types: EventType) -> Callable[[StorageTransform], StorageTransform]:
    """Register how ``types`` are stored: the log gets the transform's result
    while the projectors see the payload as given (issue 12: note texts are
    stored encrypted with a per-note key, see :mod:`peerlearn.privacy`)."""

    def deco(fn: StorageTransform) -> StorageTransform:
        for t in types:
            _STORAGE_TRANSFORMS[t] = fn
        return fn

    return deco


def after_each(hook: Callable[[Conn, Event, EventType], Awaitable[None]]) -> None:
    """Run ``hook`` after every projected event (e.g. bump a stream's version)."""
    _AFTER_EACH.append(hook)


def unprojected_types() -> set[EventType]:
    """Vocabulary members that neither have a projector nor are declared
    log-only: must be empty (a unit test checks it)."""
    _load_projections()
    return set(EventType) - set(_PROJECTORS) - _NO_READ_MODEL


def _load_projections() -> None:
    # The projectors live one layer up in the same package and register
    # themselves on import; importing here (not at module top, which would be
    # circular) guarantees that whoever appends also projects.
    import peerlearn.projections  # noqa: F401


async def project(conn: Conn, ev: Event) -> list[str]:
    """Apply one event to the read models; returns the outbox ids it created.

    Raises :class:`UnknownEventType` for a type outside the vocabulary or one
    the vocabulary has but no projector was registered for.
    """
    _load_projections()
    t = event_type(ev.type)
    fn = _PROJECTORS.get(t)
    if fn is None and t not in _NO_READ_MODEL:
        raise UnknownEventType(f"no projector registered for event type {t.value!r}")
    out = await fn(conn, ev) if fn is not None else []
    for hook in _AFTER_EACH:
        await hook(conn, ev, t)
    return out
