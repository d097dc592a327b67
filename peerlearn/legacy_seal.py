"""Seal the note texts that events written before migration 0015 hold in clear.

Why: since 0015 every NotesSubmitted / NoteCorrected reaches the log with its
``text`` sealed (:func:`peerlearn.privacy.seal`), so erasing a note is
destroying its key. An installation that upgraded from before 0015 still has
older events whose ``payload->>'text'`` is plain: erasing such a note would
leave its words in the append-only log. :func:`seal_legacy_events` rewrites
those payloads in place, ``text`` -> ``text_sealed`` under the note's own key
(created, with the author organisation, when missing), which is the one
UPDATE the ``events_append_only`` trigger allows since migration 0019.

Properties the callers rely on:

- idempotent: a sealed payload has no ``text`` any more, a second run finds
  nothing (and the partial index ``events_legacy_clear_text`` makes that
  check an index probe, so the worker runs it at every start);
- safe while the service runs: it locks only the event rows it rewrites
  (``FOR UPDATE SKIP LOCKED``, one short transaction per batch; appends are
  INSERTs and never wait on it), and every reader of note payloads (the
  projectors, :func:`peerlearn.privacy.note_text`) takes both forms;
- only the ``text`` key changes: the UPDATE is written in SQL as
  ``payload - 'text' || {text_sealed}`` so every other key keeps its stored
  jsonb value bit for bit (a round trip through Python could reformat a
  number, and the trigger would rightly refuse it).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from peerlearn import privacy
from peerlearn.events import EventType

Conn = psycopg.AsyncConnection[Any]

log = logging.getLogger("peerlearn.legacy_seal")

#: The event types whose ``text`` is sealed: those of the storage transform
#: (``privacy.SEALED_TYPES``, not read here at import time so that
#: :mod:`peerlearn.privacy` may import this module) and of the trigger (0019).
LEGACY_TYPES = (EventType.NOTES_SUBMITTED, EventType.NOTE_CORRECTED)


async def seal_legacy_events(
    conn: Conn, batch: int = 500, *, note_ids: Sequence[str] | None = None
) -> int:
    """Seal every NotesSubmitted / NoteCorrected event whose payload still
    holds ``text`` in clear; returns how many were sealed.

    Each batch runs in a transaction of its own (a savepoint when the caller
    already holds one). ``note_ids`` limits it to those notes' events and then
    waits for rows another transaction holds instead of skipping them: that is
    the form :func:`peerlearn.privacy.erase` needs before it destroys the keys
    (a row skipped there could be sealed a moment later under a key the
    erasure did not see).
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    types = [t.value for t in LEGACY_TYPES]
    only = list(note_ids) if note_ids is not None else None
    if only is not None and not only:
        return 0
    lock = "FOR UPDATE" if only is not None else "FOR UPDATE SKIP LOCKED"
    sealed = 0
    after = 0  # keyset: every row is looked at once, even one left as it is
    while True:
        async with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
            await cur.execute(
                "SELECT global_position, type, stream_id, payload FROM events"
                " WHERE type = ANY(%s) AND payload ? 'text' AND global_position > %s"
                " AND (%s::text[] IS NULL OR payload->>'note_id' = ANY(%s::text[]))"
                f" ORDER BY global_position LIMIT %s {lock}",
                (types, after, only, only, batch),
            )
            rows = await cur.fetchall()
            for position, type_, stream_id, payload in rows:
                after = int(position)
                if payload.get("text") is None or privacy.SEALED in payload:
                    continue  # no words to hide (null), or not the legacy form
                stored = await privacy.seal(conn, EventType(type_), stream_id, payload)
                blob = stored.get(privacy.SEALED)
                if not isinstance(blob, str):
                    continue
                await cur.execute(
                    "UPDATE events SET payload = (payload - 'text') || %s"
                    " WHERE global_position = %s",
                    (Jsonb({privacy.SEALED: blob}), position),
                )
                sealed += cur.rowcount
        if len(rows) < batch:
            return sealed


async def seal_at_start(pool: AsyncConnectionPool) -> int:
    """:func:`seal_legacy_events` for a process start (the worker runs it
    beside its polling, every start): logs how many it sealed.

    A database error is logged, not raised: an old schema (before 0019, whose
    trigger refuses the UPDATE) must not keep a worker from serving; the
    next start tries again.
    """
    t0 = time.perf_counter()
    try:
        async with pool.connection() as conn:
            n = await seal_legacy_events(conn)
    except psycopg.Error as exc:
        log.warning("legacy note events not sealed: %s", exc)
        return 0
    if n:
        log.info(
            "sealed %d legacy note event(s) (clear text from before migration 0015) in %.1fs",
            n,
            time.perf_counter() - t0,
        )
    else:
        log.info("no legacy note events to seal")
    return n


# ---- `peerlearn seal-legacy` ----------------------------------------------------------------


async def _run(batch: int) -> int:
    from peerlearn import db
    from peerlearn.settings import get_settings

    conninfo = db.database_url(get_settings())
    db.wait_for_database(conninfo)
    db.migrate(conninfo)
    async with await psycopg.AsyncConnection.connect(conninfo) as conn:
        return await seal_legacy_events(conn, batch)


def _cmd(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    n = asyncio.run(_run(args.batch))
    print(f"sealed {n} legacy note event(s) in {time.perf_counter() - t0:.1f}s")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "seal-legacy",
        help="seal note texts that events from before migration 0015 hold in clear (idempotent)",
    )
    p.add_argument("--batch", type=int, default=500, help="events per transaction (default 500)")
    p.set_defaults(func=_cmd)
