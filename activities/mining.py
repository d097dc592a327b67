"""Mining activities: statements, embeddings in pgvector, themes, practices.

- ``assign_note_themes`` (called by the cycle workflow when a note arrives):
  segment the note, embed through the pgvector cache, assign its statements to
  the stored ThemeModel's themes (or leave them unassigned before the first
  re-mine), write them, refresh the touched themes' practices.
- ``mining_prepare`` / ``mining_encode_batch`` / ``mining_cluster`` /
  ``mining_fail``: the stages of the ThemeMining workflow.

Theme ids of a programme-scoped model are prefixed with the programme id, so
they never collide with the global model's ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, LiteralString

import numpy as np
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from temporalio import activity

from peerlearn import miner_service
from peerlearn.nlp_adapter import get, jsonable, make_note, statement_from_row
from peerlearn.practices import PRACTICE_KINDS, rank_practices
from peerlearn.settings import Settings
from workflows.mining import (
    MINING_CLUSTER,
    MINING_ENCODE_BATCH,
    MINING_FAIL,
    MINING_PREPARE,
    MiningBatchInput,
    MiningBatchOutput,
    MiningClusterInput,
    MiningClusterOutput,
    MiningFailInput,
    MiningPrepareInput,
    MiningPrepareOutput,
)
from workflows.mining_contract import (
    ASSIGN_NOTE_THEMES,
    AssignNoteThemesInput,
    AssignNoteThemesOutput,
)

log = logging.getLogger("peerlearn.mining")

MINING_STREAM = "mining"
STATEMENT_COLUMNS = (
    "id, note_id, position, programme_id, cycle_id, meeting_id, organisation_id, text,"
    " language, kind, heading, content_hash, lemmas, theme_id, source_date"
)
_model_cache: dict[tuple[str, datetime], Any] = {}


def theme_key(scope: str, raw_id: str) -> str:
    return raw_id if scope == "all" else f"{scope}:{raw_id}"


def raw_theme_id(scope: str, key: str) -> str:
    prefix = f"{scope}:"
    return key[len(prefix) :] if scope != "all" and key.startswith(prefix) else key


def scope_clause(scope: str) -> tuple[str, tuple[Any, ...]]:
    if scope == "all":
        return "TRUE", ()
    return "programme_id = %s", (scope,)


Row = dict[str, Any]


async def fetch_all(
    conn: AsyncConnection[Any],
    sql: LiteralString | str,
    params: Sequence[Any] | None = None,
    *,
    binary: bool = False,
) -> list[Row]:
    """Rows as dicts whatever the connection's row factory. ``binary`` fetches
    vectors as raw float arrays (no text parsing of 384 numbers per row)."""
    async with conn.cursor(row_factory=dict_row, binary=binary) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def fetch_one(
    conn: AsyncConnection[Any], sql: LiteralString | str, params: Sequence[Any] | None = None
) -> Row | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchone()


# ---- reading the cycle engine's read models (defensively: no hard schema coupling) ----


async def _one(
    conn: AsyncConnection[Any], sql: str, params: Sequence[Any]
) -> dict[str, Any] | None:
    try:
        async with conn.transaction():
            return await fetch_one(conn, sql, params)
    except Exception as exc:  # a table or column the read model does not have
        log.debug("read model lookup failed: %s", exc)
        return None


def _first(row: dict[str, Any] | None, *names: str) -> Any:
    if not row:
        return None
    for n in names:
        if row.get(n) is not None:
            return row[n]
    return None


async def load_note_meta(
    conn: AsyncConnection[Any], note_id: str, cycle_id: str, meeting_id: str
) -> dict[str, Any]:
    """The note's text and where it comes from, from the cycle engine's tables."""
    note = await _one(conn, "SELECT * FROM notes WHERE id = %s", (note_id,))
    if note is None:
        note = await _one(conn, "SELECT * FROM notes WHERE note_id = %s", (note_id,))
    if note is None:
        raise LookupError(f"note {note_id!r} not found in the notes read model")
    meeting = (
        await _one(
            conn, "SELECT * FROM meetings WHERE cycle_id = %s AND id = %s", (cycle_id, meeting_id)
        )
        or await _one(
            conn,
            "SELECT * FROM meetings WHERE cycle_id = %s AND meeting_id = %s",
            (cycle_id, meeting_id),
        )
        or await _one(conn, "SELECT * FROM meetings WHERE id = %s", (meeting_id,))
    )
    cycle = await _one(conn, "SELECT * FROM cycles WHERE id = %s", (cycle_id,)) or await _one(
        conn, "SELECT * FROM cycles WHERE cycle_id = %s", (cycle_id,)
    )
    when = _first(meeting, "held_at", "starts_at", "date") or _first(
        note, "submitted_at", "created_at"
    )
    return {
        "id": note_id,
        "text": _first(note, "text", "body") or "",
        "language": _first(note, "language"),
        "programme": _first(note, "programme_id")
        or _first(meeting, "programme_id")
        or _first(cycle, "programme_id"),
        "cycle": cycle_id,
        "meeting": meeting_id,
        "organisation": _first(note, "author_organisation", "organisation_id", "organisation"),
        "date": when,
    }


# ---- theme models --------------------------------------------------------------------


async def load_model(conn: AsyncConnection[Any], scope: str) -> Any | None:
    """The scope's ThemeModel, parsed once per version: the cheap ``updated_at``
    is read first, and the model's JSON (centroids, language means: hundreds
    of kB) only travels and gets parsed (off the event loop) when it changed."""
    row = await fetch_one(conn, "SELECT updated_at FROM theme_models WHERE scope = %s", (scope,))
    if row is None:
        return None
    key = (scope, row["updated_at"])
    model = _model_cache.get(key)
    if model is None:
        full = await fetch_one(
            conn, "SELECT model, updated_at FROM theme_models WHERE scope = %s", (scope,)
        )
        if full is None:
            return None
        key = (scope, full["updated_at"])
        from nlp.types import ThemeModel

        model = await asyncio.to_thread(ThemeModel.from_dict, full["model"])
        for k in [k for k in _model_cache if k[0] == scope]:
            del _model_cache[k]
        _model_cache[key] = model
    return model


# ---- writing statements and practices -------------------------------------------------


async def write_statements(
    conn: AsyncConnection[Any],
    note_id: str,
    statements: Sequence[Any],
    theme_ids: Sequence[str | None],
    meta: dict[str, Any],
) -> None:
    await write_notes_statements(conn, [(meta, statements, theme_ids)], [note_id])


async def write_notes_statements(
    conn: AsyncConnection[Any],
    notes: Sequence[tuple[dict[str, Any], Sequence[Any], Sequence[str | None]]],
    note_ids: Sequence[str] | None = None,
) -> None:
    """Replace the statements of many notes: one DELETE and one pipelined INSERT
    batch for all of them (not two round trips per note)."""
    rows: list[tuple[Any, ...]] = []
    ids = list(note_ids) if note_ids is not None else [m["id"] for m, _, _ in notes]
    for (meta, statements, theme_ids), note_id in zip(notes, ids, strict=True):
        rows += _statement_rows(note_id, statements, theme_ids, meta)
    await conn.execute(
        "DELETE FROM statements WHERE note_id = ANY(%s) AND NOT (id = ANY(%s))",
        (ids, [r[0] for r in rows]),
    )
    if not rows:
        return
    rows.sort(key=lambda r: r[0])  # one lock order for concurrent writers
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO statements (id, note_id, position, programme_id, cycle_id, meeting_id,"
            " organisation_id, text, language, kind, heading, content_hash, lemmas, theme_id,"
            " source_date) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
            " ON CONFLICT (id) DO UPDATE SET position = EXCLUDED.position,"
            " programme_id = EXCLUDED.programme_id, cycle_id = EXCLUDED.cycle_id,"
            " meeting_id = EXCLUDED.meeting_id, organisation_id = EXCLUDED.organisation_id,"
            " text = EXCLUDED.text, language = EXCLUDED.language, kind = EXCLUDED.kind,"
            " heading = EXCLUDED.heading, content_hash = EXCLUDED.content_hash,"
            " lemmas = EXCLUDED.lemmas, theme_id = EXCLUDED.theme_id,"
            " source_date = EXCLUDED.source_date",
            rows,
        )


def _statement_rows(
    note_id: str,
    statements: Sequence[Any],
    theme_ids: Sequence[str | None],
    meta: dict[str, Any],
) -> list[tuple[Any, ...]]:
    rows = []
    for s, tid in zip(statements, theme_ids, strict=True):
        rows.append(
            (
                s.id,
                note_id,
                int(s.position),
                meta.get("programme"),
                meta.get("cycle"),
                meta.get("meeting"),
                meta.get("organisation"),
                s.text,
                s.language,
                str(get(s, "kind", "other") or "other"),
                get(s, "heading"),
                s.content_hash,
                list(get(s, "lemmas", []) or []),
                tid,
                _as_date(meta.get("date")),
            )
        )
    return rows


def _as_date(v: Any) -> Any:
    if v is None:
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v.replace("Z", "+00:00")).date()
        except ValueError:
            return None
    return v


async def refresh_practices(
    conn: AsyncConnection[Any], theme_ids: Sequence[str], run_id: str | None = None
) -> int:
    """Re-rank the practices of ``theme_ids`` from their statements (all languages)."""
    theme_ids = sorted({t for t in theme_ids if t})
    if not theme_ids:
        return 0
    found = await fetch_all(
        conn,
        "SELECT s.id, s.theme_id, s.kind, s.text, s.language, s.cycle_id, s.organisation_id,"
        " e.embedding FROM statements s JOIN embeddings e USING (content_hash)"
        " WHERE s.theme_id = ANY(%s) AND s.kind = ANY(%s) ORDER BY s.theme_id, s.id",
        (theme_ids, list(PRACTICE_KINDS)),
        binary=True,
    )
    # n x n similarities per theme and regexes per statement: seconds for big
    # themes, so off the event loop (the worker's workflows share that loop)
    rows = await asyncio.to_thread(_rank_all, found, run_id)
    await conn.execute("DELETE FROM practices WHERE theme_id = ANY(%s)", (theme_ids,))
    if rows:
        async with conn.cursor() as c:
            await c.executemany(
                "INSERT INTO practices (statement_id, theme_id, kind, audience, support_cycles,"
                " support_organisations, support_statements, score, rank, run_id)"
                " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (statement_id) DO UPDATE SET"
                " theme_id = EXCLUDED.theme_id, kind = EXCLUDED.kind, audience = EXCLUDED.audience,"
                " support_cycles = EXCLUDED.support_cycles,"
                " support_organisations = EXCLUDED.support_organisations,"
                " support_statements = EXCLUDED.support_statements, score = EXCLUDED.score,"
                " rank = EXCLUDED.rank, run_id = EXCLUDED.run_id, updated_at = now()",
                rows,
            )
    return len(rows)


def _rank_all(found: list[Row], run_id: str | None) -> list[tuple[Any, ...]]:
    by_theme: dict[str, list[Row]] = {}
    for r in found:
        by_theme.setdefault(r["theme_id"], []).append(r)
    rows: list[tuple[Any, ...]] = []
    for tid, rs in by_theme.items():
        ranked = rank_practices(
            tid,
            [r["id"] for r in rs],
            [r["kind"] for r in rs],
            [r["text"] for r in rs],
            [r["language"] for r in rs],
            [r["cycle_id"] for r in rs],
            [r["organisation_id"] for r in rs],
            np.stack([miner_service._as_array(r["embedding"]) for r in rs]),
        )
        rows += [
            (
                p.statement_id,
                p.theme_id,
                p.kind,
                p.audience,
                p.support_cycles,
                p.support_organisations,
                p.support_statements,
                p.score,
                p.rank,
                run_id,
            )
            for p in ranked
        ]
    return rows


# ---- events ----------------------------------------------------------------------------


async def append_mining_events(
    pool: AsyncConnectionPool, run_id: str, events: list[tuple[str, dict[str, Any]]]
) -> None:
    """Theme events on the ``mining`` stream through the cycle engine's event store."""
    if not events:
        return
    try:
        from peerlearn import eventstore
    except ImportError:  # event store not there yet: the run's changes stay in mining_runs
        log.warning("peerlearn.eventstore missing; %d mining events not appended", len(events))
        return
    now = datetime.now(UTC)
    append = eventstore.append
    for i, (etype, payload) in enumerate(events):
        await eventstore_append(append, pool, run_id, i, etype, payload, now)


async def eventstore_append(
    append: Any,
    pool: AsyncConnectionPool,
    run_id: str,
    i: int,
    etype: str,
    payload: dict[str, Any],
    now: datetime,
) -> None:
    async with pool.connection() as conn, conn.transaction():
        await append(
            conn,
            stream_id=MINING_STREAM,
            type=etype,
            payload=payload,
            idempotency_key=f"mining:{run_id}:{i}",
            occurred_at=now,
        )


# ---- the activities ----------------------------------------------------------------------


class MiningActivities:
    def __init__(self, pool: AsyncConnectionPool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    # -- incremental ------------------------------------------------------------------

    @activity.defn(name=ASSIGN_NOTE_THEMES)
    async def assign_note_themes(self, inp: AssignNoteThemesInput) -> AssignNoteThemesOutput:
        # Heartbeats let the cycle notice a dead worker within its heartbeat timeout
        # instead of waiting out the whole start-to-close timeout before a retry.
        hb = asyncio.create_task(_heartbeat_every(5.0))
        try:
            async with self.pool.connection() as conn:
                meta = await load_note_meta(conn, inp.note_id, inp.cycle_id, inp.meeting_id)
            return await self.ingest_note(meta)
        finally:
            hb.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hb

    async def ingest_note(self, meta: dict[str, Any]) -> AssignNoteThemesOutput:
        """Segment, embed (cache first), assign and store one note; also used by tests,
        the demo loader and benchmarks with notes that are not in the read models."""
        return (await self.ingest_notes([meta]))[0]

    async def ingest_notes(self, metas: list[dict[str, Any]]) -> list[AssignNoteThemesOutput]:
        """:meth:`ingest_note` for many notes at once: one segmentation call, one
        cache read, one encoding batch, one write batch, one practices refresh.
        Every CPU-bound step runs in a thread, never on the worker's event loop."""
        miner = await miner_service.get_miner_async(self.settings)
        notes = [make_note(**m) for m in metas]
        statements = await asyncio.to_thread(miner.segment, notes, "note")
        by_note: dict[str, list[Any]] = {m["id"]: [] for m in metas}
        for st in statements:
            if len(by_note[st.source_id]) < self.settings.max_statements_per_note:
                by_note[st.source_id].append(st)
        flat = [st for m in metas for st in by_note[m["id"]]]
        emb, _encoded = await miner_service.embed_statements(self.pool, miner, flat)
        async with self.pool.connection() as conn:
            models: dict[str, tuple[str, Any]] = {}
            for meta in metas:
                programme = meta.get("programme") or ""
                if programme in models:
                    continue
                scope, model = "all", None
                if programme:
                    model = await load_model(conn, programme)
                    scope = programme if model is not None else "all"
                if model is None:
                    model = await load_model(conn, "all")
                models[programme] = (scope, model)
            plan = [(m, by_note[m["id"]], models[m.get("programme") or ""]) for m in metas]
            assigned = await asyncio.to_thread(_classify_and_assign, miner, flat, emb, plan)
            writes = [(m, by_note[m["id"]], tids) for m, tids in zip(metas, assigned, strict=True)]
            await write_notes_statements(conn, writes)
            touched_all = sorted({t for tids in assigned for t in tids if t})
            await refresh_practices(conn, touched_all)
            await conn.commit()
        return [
            AssignNoteThemesOutput(
                statement_count=len(tids),
                theme_ids=sorted({t for t in tids if t}),
                unassigned=sum(1 for t in tids if t is None),
            )
            for tids in assigned
        ]

    # -- ThemeMining stages -------------------------------------------------------------

    @activity.defn(name=MINING_PREPARE)
    async def mining_prepare(self, inp: MiningPrepareInput) -> MiningPrepareOutput:
        where, params = scope_clause(inp.scope)
        async with self.pool.connection() as conn:
            row = await fetch_one(
                conn,
                f"SELECT count(*) AS n, count(e.content_hash) AS cached FROM statements s"
                f" LEFT JOIN embeddings e USING (content_hash) WHERE {where}",
                params,
            )
            assert row is not None
            total = int(row["n"])
            await conn.execute(
                "INSERT INTO mining_runs (id, scope, trigger, status, stage, total)"
                " VALUES (%s, %s, %s, 'running', 'encoding', %s)"
                " ON CONFLICT (id) DO UPDATE SET stage = 'encoding', total = EXCLUDED.total,"
                " status = 'running', done = 0",
                (inp.run_id, inp.scope, inp.trigger, total),
            )
            await conn.commit()
        size = max(1, inp.batch_size)
        return MiningPrepareOutput(
            total=total, batches=list(range(0, total, size)), cached=int(row["cached"])
        )

    @activity.defn(name=MINING_ENCODE_BATCH)
    async def mining_encode_batch(self, inp: MiningBatchInput) -> MiningBatchOutput:
        """Encode the batch's texts missing from the cache; heartbeats every chunk.

        Batches are slices of the scope's statements ordered by content hash, so
        repeated texts fall into one batch and are encoded once."""
        where, params = scope_clause(inp.scope)
        async with self.pool.connection() as conn:
            rows = await fetch_all(
                conn,
                f"SELECT s.id, s.content_hash, CASE WHEN e.content_hash IS NULL THEN s.text END"
                f" AS text FROM statements s"
                f" LEFT JOIN embeddings e USING (content_hash) WHERE {where}"
                f" ORDER BY s.content_hash, s.id OFFSET %s LIMIT %s",
                (*params, inp.offset, inp.limit),
            )
        todo: dict[str, str] = {}
        for r in rows:
            if r["text"] is not None:
                todo.setdefault(r["content_hash"], r["text"])
        encoded = 0
        if todo:
            miner = await miner_service.get_miner_async(self.settings)
            items = list(todo.items())
            chunk = 128  # big enough for the encoder's batching, small enough to heartbeat
            for i in range(0, len(items), chunk):
                part = items[i : i + chunk]
                vecs = await asyncio.to_thread(
                    miner_service.encode_texts, miner, [t for _, t in part]
                )
                async with self.pool.connection() as conn:
                    await miner_service.store_embeddings(
                        conn, {h: vecs[k] for k, (h, _) in enumerate(part)}
                    )
                    await conn.commit()
                encoded += len(part)
                activity.heartbeat(i + len(part))
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE mining_runs SET done = LEAST(total, done + %s) WHERE id = %s",
                (len(rows), inp.run_id),
            )
            await conn.commit()
        return MiningBatchOutput(statements=len(rows), encoded=encoded)

    @activity.defn(name=MINING_CLUSTER)
    async def mining_cluster(self, inp: MiningClusterInput) -> MiningClusterOutput:
        hb = asyncio.create_task(_heartbeat_every(10.0))
        try:
            return await self._cluster(inp)
        finally:
            hb.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hb

    async def _cluster(self, inp: MiningClusterInput) -> MiningClusterOutput:
        scope = inp.scope
        where, params = scope_clause(scope)
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE mining_runs SET stage = 'clustering' WHERE id = %s", (inp.run_id,)
            )
            await conn.commit()
            rows = await fetch_all(
                conn,
                f"SELECT {', '.join('s.' + c.strip() for c in STATEMENT_COLUMNS.split(','))},"
                f" e.embedding FROM statements s JOIN embeddings e USING (content_hash)"
                f" WHERE {where} ORDER BY s.id",
                params,
                binary=True,
            )
            previous = await load_model(conn, scope)
            old_ids = {
                r["id"]
                for r in await fetch_all(
                    conn, "SELECT id FROM themes WHERE scope = %s AND retired_at IS NULL", (scope,)
                )
            }
        if not rows:
            await self._finish(inp.run_id, 0, [])
            return MiningClusterOutput()
        miner = await miner_service.get_miner_async(self.settings)
        # building statements, clustering, the 2-D projection and the model's JSON
        # are all CPU-bound (seconds to tens of seconds at 10k statements): one
        # thread does them so the worker's event loop keeps serving workflows
        statements, result, xy, model_dict = await asyncio.to_thread(
            _mine_sync, miner, rows, previous, inp.seed
        )
        activity.heartbeat("mined")
        assignments = [theme_key(scope, a) if a else None for a in result.assignments]
        themes = list(result.themes)
        new_ids = {theme_key(scope, str(get(t, "id"))) for t in themes}
        changes: list[dict[str, Any]] = [
            {
                "kind": str(get(c, "kind")),
                "theme_id": theme_key(scope, str(get(c, "theme_id"))),
                "from_ids": [theme_key(scope, str(f)) for f in (get(c, "from_ids") or [])],
            }
            for c in result.changes
        ]
        reported_retired = {c["theme_id"] for c in changes if c["kind"] == "retired"}
        for tid in sorted(old_ids - new_ids - reported_retired):
            changes.append({"kind": "retired", "theme_id": tid, "from_ids": []})
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE mining_runs SET stage = 'saving' WHERE id = %s", (inp.run_id,)
            )
            await _upsert_themes(conn, scope, themes, inp.run_id)
            retired = sorted(old_ids - new_ids)
            if retired:
                await conn.execute(
                    "UPDATE themes SET retired_at = now() WHERE id = ANY(%s)", (retired,)
                )
            await conn.execute(
                "UPDATE statements s SET theme_id = u.theme_id, kind = u.kind, map_x = u.x,"
                " map_y = u.y FROM (SELECT unnest(%s::text[]) AS id,"
                " unnest(%s::text[]) AS theme_id, unnest(%s::text[]) AS kind,"
                " unnest(%s::real[]) AS x, unnest(%s::real[]) AS y) u WHERE s.id = u.id",
                (
                    [s.id for s in statements],
                    assignments,
                    [str(s.kind or "other") for s in statements],
                    [float(v) for v in xy[:, 0]],
                    [float(v) for v in xy[:, 1]],
                ),
            )
            await conn.execute(
                "INSERT INTO theme_models (scope, model, run_id) VALUES (%s, %s, %s)"
                " ON CONFLICT (scope) DO UPDATE SET model = EXCLUDED.model,"
                " run_id = EXCLUDED.run_id, updated_at = now()",
                (scope, Jsonb(model_dict), inp.run_id),
            )
            await conn.execute(
                "DELETE FROM practices WHERE theme_id = ANY(%s)", (sorted(old_ids | new_ids),)
            )
            await refresh_practices(conn, sorted(new_ids), inp.run_id)
            await conn.commit()
        await self._finish(inp.run_id, len(themes), changes)
        await append_mining_events(
            self.pool,
            inp.run_id,
            [
                (
                    "ThemesMined",
                    {
                        "run_id": inp.run_id,
                        "scope": scope,
                        "themes": len(themes),
                        "statements": len(statements),
                        "changes": len(changes),
                    },
                )
            ]
            + [
                (_EVENT_TYPES.get(c["kind"], "ThemeChanged"), {"run_id": inp.run_id, **c})
                for c in changes
                if c["kind"] != "kept"
            ],
        )
        return MiningClusterOutput(
            theme_count=len(themes),
            assigned=sum(1 for a in assignments if a),
            unassigned=sum(1 for a in assignments if not a),
            changes=changes,
        )

    async def _finish(self, run_id: str, theme_count: int, changes: list[dict[str, Any]]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE mining_runs SET status = 'completed', stage = 'done', done = total,"
                " theme_count = %s, changes = %s, finished_at = now() WHERE id = %s",
                (theme_count, Jsonb(changes), run_id),
            )
            await conn.commit()

    @activity.defn(name=MINING_FAIL)
    async def mining_fail(self, inp: MiningFailInput) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "UPDATE mining_runs SET status = 'failed', error = %s, finished_at = now()"
                " WHERE id = %s",
                (inp.error[:2000], inp.run_id),
            )
            await conn.commit()

    def all(self) -> list[Any]:
        return [
            self.assign_note_themes,
            self.mining_prepare,
            self.mining_encode_batch,
            self.mining_cluster,
            self.mining_fail,
        ]


_EVENT_TYPES = {
    "new": "ThemeCreated",
    "merged": "ThemeMerged",
    "split": "ThemeSplit",
    "retired": "ThemeRetired",
}


def _classify_and_assign(
    miner: Any,
    flat: list[Any],
    emb: np.ndarray,
    plan: list[tuple[dict[str, Any], list[Any], tuple[str, Any]]],
) -> list[list[str | None]]:
    """Kinds (they use the embeddings too) and the nearest stored theme per
    statement; ``plan`` is each note's statements (in ``flat`` order) and model."""
    if flat:
        miner.classify(flat, emb)
    out: list[list[str | None]] = []
    pos = 0
    for _meta, stmts, (scope, model) in plan:
        vecs = emb[pos : pos + len(stmts)]
        pos += len(stmts)
        raw = (
            miner.assign(stmts, vecs, model) if model is not None and stmts else [None] * len(stmts)
        )
        out.append([theme_key(scope, t) if t else None for t in raw])
    return out


async def _heartbeat_every(seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        activity.heartbeat("working")


def _mine_sync(
    miner: Any, rows: list[Row], previous: Any, seed: int
) -> tuple[list[Any], Any, np.ndarray, Any]:
    statements = [statement_from_row(r) for r in rows]
    emb = np.stack([miner_service._as_array(r["embedding"]) for r in rows])
    result = miner.mine(statements, embeddings=emb, previous=previous, seed=seed)
    xy = _projection(emb, [s.language for s in statements])
    return statements, result, xy, jsonable(result.model.to_dict())


def _projection(emb: np.ndarray, languages: Sequence[str]) -> np.ndarray:
    """2-D map of the statements: PCA of language-centred embeddings (so the map
    shows topics, not languages)."""
    x = emb.astype(np.float64).copy()
    langs = np.asarray(languages)
    for lang in set(languages):
        m = langs == lang
        x[m] -= x[m].mean(axis=0)
    x -= x.mean(axis=0)
    if len(x) < 3:
        return np.zeros((len(x), 2))
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    out = x @ vt[:2].T
    scale = np.abs(out).max() or 1.0
    return out / scale


async def _upsert_themes(
    conn: AsyncConnection[Any], scope: str, themes: Sequence[Any], run_id: str
) -> None:
    """All of a run's themes in one pipelined batch."""
    rows = sorted((_theme_row(scope, t, run_id) for t in themes), key=lambda r: r[0])
    if not rows:
        return
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO themes (id, scope, label, keyphrases, size, languages, representatives,"
            " recurrence, cycles, organisations, programmes, first_seen, last_seen, run_id)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
            " ON CONFLICT (id) DO UPDATE SET scope = EXCLUDED.scope, label = EXCLUDED.label,"
            " keyphrases = EXCLUDED.keyphrases, size = EXCLUDED.size,"
            " languages = EXCLUDED.languages,"
            " representatives = EXCLUDED.representatives, recurrence = EXCLUDED.recurrence,"
            " cycles = EXCLUDED.cycles, organisations = EXCLUDED.organisations,"
            " programmes = EXCLUDED.programmes, first_seen = EXCLUDED.first_seen,"
            " last_seen = EXCLUDED.last_seen, run_id = EXCLUDED.run_id, updated_at = now(),"
            " retired_at = NULL",
            rows,
        )


def _theme_row(scope: str, t: Any, run_id: str) -> tuple[Any, ...]:
    tid = theme_key(scope, str(get(t, "id")))
    rec = jsonable(get(t, "recurrence") or {})
    reps = jsonable(get(t, "representatives") or {})
    langs = jsonable(get(t, "languages") or {})

    def _n(*names: str) -> int:
        for name in names:
            v = rec.get(name) if isinstance(rec, dict) else None
            if isinstance(v, list | dict):
                return len(v)
            if isinstance(v, int | float):
                return int(v)
        return 0

    return (
        tid,
        scope,
        str(get(t, "label") or tid),
        Jsonb(jsonable(get(t, "keyphrases") or [])),
        int(get(t, "size") or 0),
        Jsonb(langs),
        Jsonb(reps),
        Jsonb(rec),
        _n("cycles", "n_cycles", "distinct_cycles"),
        _n("organisations", "n_organisations", "distinct_organisations"),
        _n("programmes", "n_programmes", "distinct_programmes"),
        _as_date(rec.get("first_seen") if isinstance(rec, dict) else None),
        _as_date(rec.get("last_seen") if isinstance(rec, dict) else None),
        run_id,
    )
