"""Note texts written before migration 0015 (issue 12, right to erasure).

An installation upgrading from before 0015 has NotesSubmitted / NoteCorrected
events whose payload holds ``text`` in clear. Here such events are written
the way the old code did (the event store with the sealing transform not
registered) or by a plain INSERT, and then: :func:`seal_legacy_events`
seals them in place (the marker words leave the log, the texts stay
readable, a projection rebuild still yields them, a second run seals
nothing, two concurrent runs seal each event once); the append-only
trigger still refuses every DELETE and every UPDATE except that one
change; an erasure afterwards leaves the words nowhere in the log; the
worker's start-up hook and ``peerlearn seal-legacy`` do the same.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_asyncio
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from review_support import cycle_started

from peerlearn import db, eventstore, privacy
from peerlearn.events import EventType
from peerlearn.legacy_seal import LEGACY_TYPES, seal_at_start, seal_legacy_events
from peerlearn.projections import arebuild_projections

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2014, 3, 1, 9, tzinfo=UTC)  # long before 0015
REFUSED = "events is append-only"


@pytest_asyncio.fixture(loop_scope="session")
async def fresh_pool(fresh_database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    """A pool on a database of this test's own (counts of sealed events are exact)."""
    p = await db.open_pool(fresh_database_url, min_size=1, max_size=4)
    yield p
    await p.close()


@contextmanager
def before_0015() -> Iterator[None]:
    """Append as the code before migration 0015 did: no sealing transform."""
    eventstore._load_projections()
    saved = {t: eventstore._STORAGE_TRANSFORMS.pop(t) for t in LEGACY_TYPES}
    try:
        yield
    finally:
        eventstore._STORAGE_TRANSFORMS.update(saved)


class Legacy:
    """One cycle with a site visit, its notes appended through the event store."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        self.cycle = "leg-" + uuid.uuid4().hex[:8]
        self.n = 0

    async def add(self, type_: EventType, payload: dict[str, Any]) -> None:
        self.n += 1
        await eventstore.append_event(
            self.pool,
            stream_id=self.cycle,
            type=type_,
            payload=payload,
            idempotency_key=f"{self.cycle}:{self.n}",
            occurred_at=T0 + timedelta(days=self.n),
        )

    async def start(self) -> None:
        visit = {
            "meeting_id": "visit-1", "kind": "site_visit", "title": "Visit", "host": "vaxa",
            "format": "on_site", "starts_at": T0.isoformat(),
            "ends_at": (T0 + timedelta(hours=8)).isoformat(), "topics": [],
            "target_groups": [], "participants": [],
        }  # fmt: skip
        await self.add(
            EventType.CYCLE_STARTED,
            cycle_started("legacy-prog", self.cycle, ["lodz", "vaxa"], T0 + timedelta(days=300),
                          [visit], phase="meetings"),
        )  # fmt: skip

    async def submit(self, note_id: str, org: str, text: str) -> None:
        await self.add(
            EventType.NOTES_SUBMITTED,
            {"note_id": note_id, "meeting_id": "visit-1", "author_organisation": org,
             "language": "en", "text": text, "format": "text", "client_key": note_id},
        )  # fmt: skip

    async def correct(self, note_id: str, org: str, text: str, version: int) -> None:
        await self.add(
            EventType.NOTE_CORRECTED,
            {"note_id": note_id, "meeting_id": "visit-1", "author_organisation": org,
             "text": text, "language": "en", "format": "text", "version": version, "by": None},
        )  # fmt: skip


def _marker() -> str:
    return "Qvorbix" + uuid.uuid4().hex[:8]


async def _events(
    pool: AsyncConnectionPool, where: str = "TRUE", *params: Any
) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT *, payload::text AS raw FROM events WHERE " + where  # test-only SQL
            + " ORDER BY global_position",
            params,
        )  # fmt: skip
        return await cur.fetchall()


async def _q(pool: AsyncConnectionPool, query: str, *params: Any) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)  # test-only SQL
        return await cur.fetchall()


async def _holding(pool: AsyncConnectionPool, word: str) -> int:
    return len(await _events(pool, "payload::text LIKE %s", f"%{word}%"))


async def test_legacy_texts_are_sealed_in_place_and_still_read(
    fresh_pool: AsyncConnectionPool, fresh_database_url: str
) -> None:
    assert set(LEGACY_TYPES) == set(privacy.SEALED_TYPES)  # one list of sealed types
    pool = fresh_pool
    cyc = Legacy(pool)
    first, second, modern = _marker(), _marker(), _marker()
    await cyc.start()
    with before_0015():
        await cyc.submit("n-old", "lodz", f"Matchmaking {first} helped.")
        await cyc.correct("n-old", "lodz", f"Matchmaking {second} helped a lot.", 2)
        await cyc.submit("n-old2", "vaxa", "Funding beyond grants.")
    await cyc.submit("n-new", "vaxa", f"Since 0015 {modern} is sealed on append.")
    assert await _holding(pool, first) == 1 and await _holding(pool, second) == 1
    assert await _holding(pool, modern) == 0
    before = {e["global_position"]: e for e in await _events(pool)}

    async with pool.connection() as conn:
        assert await seal_legacy_events(conn, batch=2) == 3  # two batches and a last one
    after = {e["global_position"]: e for e in await _events(pool)}
    assert await _holding(pool, first) == 0 and await _holding(pool, second) == 0
    assert await _holding(pool, "Funding") == 0
    # only `text` -> `text_sealed` changed; every other field of every row is as it was
    assert after.keys() == before.keys()
    changed = 0
    for pos, old in before.items():
        new = after[pos]
        same = {k: v for k, v in old.items() if k not in ("payload", "raw")}
        assert {k: v for k, v in new.items() if k not in ("payload", "raw")} == same
        if "text" in old["payload"]:
            changed += 1
            assert "text" not in new["payload"]
            rest = {k: v for k, v in new["payload"].items() if k != privacy.SEALED}
            assert rest == {k: v for k, v in old["payload"].items() if k != "text"}
            async with pool.connection() as conn:
                assert await privacy.note_text(conn, new["payload"]) == old["payload"]["text"]
        else:
            assert new["raw"] == old["raw"]
    assert changed == 3
    keys = await _q(pool, "SELECT note_id, organisation_id FROM note_keys")
    assert {(k["note_id"], k["organisation_id"]) for k in keys} >= {
        ("n-old", "lodz"), ("n-old2", "vaxa"), ("n-new", "vaxa")
    }  # fmt: skip

    # idempotent
    async with pool.connection() as conn:
        assert await seal_legacy_events(conn) == 0
    # a rebuild replays the sealed log into the same notes
    await arebuild_projections(fresh_database_url)
    rows = await _q(pool, "SELECT id, text, version FROM notes ORDER BY id")
    texts = {r["id"]: (r["text"], r["version"]) for r in rows}
    assert texts["n-old"] == (f"Matchmaking {second} helped a lot.", 2)
    assert texts["n-old2"] == ("Funding beyond grants.", 1)
    assert texts["n-new"][0] == f"Since 0015 {modern} is sealed on append."

    # erasure now shreds the legacy note like any other: its words nowhere in the log
    async with pool.connection() as conn, conn.transaction():
        await privacy.erase(conn, note_id="n-old", requested_by="test")
    for word in (first, second):
        assert await _holding(pool, word) == 0
    async with pool.connection() as conn:
        for ev in await _events(
            pool, "payload->>'note_id' = 'n-old' AND payload ? %s", "text_sealed"
        ):
            assert await privacy.note_text(conn, ev["payload"]) is None
    assert await _q(pool, "SELECT id FROM notes WHERE id = 'n-old'") == []


async def _insert(
    conn: psycopg.AsyncConnection[Any], type_: EventType, payload: dict[str, Any]
) -> int:
    cur = await conn.execute(
        "INSERT INTO events (stream_id, version, type, payload, occurred_at, idempotency_key)"
        " VALUES (%s, 1, %s, %s, %s, %s) RETURNING global_position",
        ("raw-" + uuid.uuid4().hex[:8], type_.value, Jsonb(payload), T0, uuid.uuid4().hex),
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row["global_position"])


async def _refused(conn: psycopg.AsyncConnection[Any], stmt: str, *params: Any) -> str:
    """The trigger's message for ``stmt`` (which must be refused), rolled back."""
    with pytest.raises(psycopg.errors.RaiseException) as exc:
        async with conn.transaction():
            await conn.execute(stmt, params)  # test-only SQL
    return str(exc.value)


SEAL = "(payload - 'text') || jsonb_build_object('text_sealed', 'AAAA')"


async def test_trigger_allows_only_the_sealing_update(fresh_pool: AsyncConnectionPool) -> None:
    async with fresh_pool.connection() as conn:
        await conn.set_autocommit(True)
        note = {"note_id": "n-raw", "meeting_id": "m", "author_organisation": "lodz",
                "language": "en", "text": "clear words", "client_key": "k"}  # fmt: skip
        pos = await _insert(conn, EventType.NOTES_SUBMITTED, note)
        other = await _insert(conn, EventType.ACTION_ITEM_UPDATED, {"note_id": "x", "text": "t"})
        at = "WHERE global_position = %s"
        for stmt in (
            f"UPDATE events SET payload = jsonb_set(payload, '{{language}}', '\"sv\"') {at}",
            f'UPDATE events SET payload = {SEAL} || \'{{"language": "sv"}}\' {at}',
            f"UPDATE events SET payload = ({SEAL}) - 'client_key' {at}",
            f"UPDATE events SET payload = {SEAL}, type = 'NoteCorrected' {at}",
            f"UPDATE events SET payload = {SEAL}, occurred_at = now() {at}",
            f"UPDATE events SET payload = {SEAL}, version = 2 {at}",
            f"UPDATE events SET payload = {SEAL}, stream_id = 'elsewhere' {at}",
            f"UPDATE events SET payload = {SEAL}, idempotency_key = 'k2' {at}",
            f"UPDATE events SET payload = {SEAL}, global_position = global_position + 1000 {at}",
            f"UPDATE events SET payload = payload - 'text' {at}",  # redacting is not sealing
            f"UPDATE events SET payload = (payload - 'text') || '{{\"text_sealed\": 1}}' {at}",
            f'UPDATE events SET payload = {SEAL} || \'{{"text": "again"}}\' {at}',
        ):
            assert REFUSED + " (UPDATE refused)" in await _refused(conn, stmt, pos), stmt
        # another type of event with a `text` is not a note: refused, and the sealer leaves it
        assert REFUSED in await _refused(conn, f"UPDATE events SET payload = {SEAL} {at}", other)
        assert "(DELETE refused)" in await _refused(conn, f"DELETE FROM events {at}", pos)
        # the one allowed change
        await conn.execute(f"UPDATE events SET payload = {SEAL} {at}", (pos,))
        # ...once: a sealed payload cannot be unsealed, re-sealed or deleted
        for stmt in (
            f"UPDATE events SET payload = (payload - 'text_sealed') || '{{\"text\": \"x\"}}' {at}",
            f"UPDATE events SET payload = jsonb_set(payload, '{{text_sealed}}', '\"BBBB\"') {at}",
            f"DELETE FROM events {at}",
        ):
            assert REFUSED in await _refused(conn, stmt, pos), stmt
        assert await seal_legacy_events(conn) == 0  # the action item is not a note event
        # a number Python would round (0.1...) keeps its stored digits: sealed in SQL
        long = "0.1000000000000000055511151231257827"
        await conn.execute(
            "INSERT INTO events (stream_id, version, type, payload, occurred_at, idempotency_key)"
            " VALUES ('num', 1, %s, %s::jsonb, now(), 'num-1')",
            (EventType.NOTES_SUBMITTED.value,
             '{"note_id": "n-num", "text": "x", "score": ' + long + "}"),
        )  # fmt: skip
        assert await seal_legacy_events(conn) == 1
    [sealed] = await _events(fresh_pool, "idempotency_key = 'num-1'")
    assert long in sealed["raw"] and "text_sealed" in sealed["raw"]
    [ev] = await _events(fresh_pool, "global_position = %s", other)
    assert ev["payload"] == {"note_id": "x", "text": "t"}


async def test_concurrent_runs_seal_each_event_once(
    fresh_pool: AsyncConnectionPool, caplog: pytest.LogCaptureFixture
) -> None:
    async with fresh_pool.connection() as conn:
        await conn.set_autocommit(True)
        for i in range(40):
            payload = {"note_id": f"c-{i}", "author_organisation": "umea", "text": f"w{i}"}
            await _insert(conn, EventType.NOTES_SUBMITTED, payload)

    async def run() -> int:
        async with fresh_pool.connection() as c:
            return await seal_legacy_events(c, batch=3)

    counts = await asyncio.gather(run(), run(), run())
    assert sum(counts) == 40
    assert await _holding(fresh_pool, '"text":') == 0
    # the worker's start-up hook: nothing left, and it says so
    with caplog.at_level(logging.INFO, logger="peerlearn.legacy_seal"):
        assert await seal_at_start(fresh_pool) == 0
    assert "no legacy note events to seal" in caplog.text


async def test_erase_seals_a_never_sealed_note_first(fresh_pool: AsyncConnectionPool) -> None:
    """Erasing a legacy note nobody sealed yet: its clear text must not survive
    (privacy.erase seals the notes' legacy events before destroying the keys)."""
    word = _marker()
    cyc = Legacy(fresh_pool)
    await cyc.start()
    with before_0015():
        await cyc.submit("n-e", "lodz", f"Candid {word} words.")
    async with fresh_pool.connection() as conn, conn.transaction():
        assert await seal_legacy_events(conn, note_ids=["other"]) == 0  # only the notes named
    assert await _holding(fresh_pool, word) == 1
    async with fresh_pool.connection() as conn, conn.transaction():
        await privacy.erase(conn, note_id="n-e", requested_by="test")
    assert await _holding(fresh_pool, word) == 0  # sealed, then its key destroyed
    [ev] = await _events(fresh_pool, "payload->>'note_id' = 'n-e' AND type = %s", "NotesSubmitted")
    async with fresh_pool.connection() as conn:
        assert await privacy.note_text(conn, ev["payload"]) is None


def test_cli_seal_legacy(fresh_database_url: str) -> None:
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO events (stream_id, version, type, payload, occurred_at, idempotency_key)"
            " VALUES ('cli', 1, %s, %s, now(), 'cli-1')",
            (EventType.NOTE_CORRECTED.value,
             Jsonb({"note_id": "n-cli", "author_organisation": "a", "text": "cli words"})),
        )  # fmt: skip
    env = {**os.environ, "DATABASE_URL": fresh_database_url}
    cmd = [sys.executable, "-m", "service.cli", "seal-legacy", "--batch", "10"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("sealed 1 legacy note event(s)")
    again = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert again.stdout.startswith("sealed 0 legacy note event(s)"), again.stderr
