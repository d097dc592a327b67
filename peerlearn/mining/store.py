"""All mining SQL: notes in, statements, embeddings, theme models, themes,
practices and mining runs out; rows converted to and from ``nlp.types``.

One module so the tables of migration 0003 have one writer a reader can find,
and so the activities above it only say *what* happens, not *how* it is stored.
Columns are read by their real names (migrations 0002/0003); a missing table or
column is a bug and raises, it is never guessed around.

Theme ids of a programme-scoped model are prefixed with the programme id
(:func:`theme_key`), so they never collide with the global model's ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, LiteralString

import numpy as np
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from nlp.glosses import GLOSS_SIMILARITY
from nlp.practices import group_practices, practice_vectors
from nlp.types import PRACTICE_KINDS, NoteIn, Statement, ThemeChange, ThemeModel, ThemeSummary
from peerlearn import eventstore, self_assessment
from peerlearn.events import EventType

Conn = AsyncConnection[Any]
#: A database row as a dict; values are whatever PostgreSQL typed them as.
Row = dict[str, Any]

#: The stream every mining event goes to.
MINING_STREAM = "mining"

#: Event per theme change kind (``nlp.types.ThemeChange.kind``); "kept" is no event.
CHANGE_EVENTS: dict[str, EventType] = {
    "new": EventType.THEME_CREATED,
    "merged": EventType.THEME_MERGED,
    "split": EventType.THEME_SPLIT,
    "retired": EventType.THEME_RETIRED,
}

# statements column <-> nlp.types.Statement field (the rest share their name)
_COLUMN_OF_FIELD = {
    "source_id": "note_id",
    "programme": "programme_id",
    "cycle": "cycle_id",
    "meeting": "meeting_id",
    "organisation": "organisation_id",
    "date": "source_date",
}
_STORED_FIELDS = (
    "id",
    "source_id",
    "position",
    "programme",
    "cycle",
    "meeting",
    "organisation",
    "text",
    "language",
    "kind",
    "heading",
    "content_hash",
    "lemmas",
    "date",
)
STATEMENT_COLUMNS: tuple[str, ...] = tuple(_COLUMN_OF_FIELD.get(f, f) for f in _STORED_FIELDS)


# ---- small helpers ----------------------------------------------------------------------


def theme_key(scope: str, raw_id: str) -> str:
    """The stored id of the miner's theme ``raw_id`` in ``scope``."""
    return raw_id if scope == "all" else f"{scope}:{raw_id}"


def theme_scope(key: str) -> str:
    """The scope a stored theme id was mined in (programme ids hold no ``:``)."""
    return key.split(":", 1)[0] if ":" in key else "all"


def raw_theme_id(scope: str, key: str) -> str:
    """Inverse of :func:`theme_key`."""
    prefix = f"{scope}:"
    return key[len(prefix) :] if scope != "all" and key.startswith(prefix) else key


def scope_clause(scope: str) -> tuple[LiteralString, tuple[str, ...]]:
    """The condition on ``statements s`` selecting a scope ('all' or one programme)."""
    if scope == "all":
        return "TRUE", ()
    return "s.programme_id = %s", (scope,)


def as_array(v: object) -> np.ndarray:
    """A pgvector value (binary fetch: ``numpy`` or ``Vector``) as float32."""
    if isinstance(v, np.ndarray):
        return v.astype(np.float32, copy=False)
    to_numpy = getattr(v, "to_numpy", None)
    if to_numpy is not None:
        return np.asarray(to_numpy(), dtype=np.float32)
    return np.asarray(v, dtype=np.float32)


def _iso_date(v: datetime | date | None) -> str | None:
    if v is None:
        return None
    return (v.astimezone(UTC).date() if isinstance(v, datetime) else v).isoformat()


def _parse_date(v: str | None) -> date | None:
    """``nlp.types`` dates are ISO strings (a date or a longer timestamp)."""
    return date.fromisoformat(v[:10]) if v else None


async def fetch_all(
    conn: Conn, sql: LiteralString, params: Sequence[object] | None = None, *, binary: bool = False
) -> list[Row]:
    """Rows as dicts whatever the connection's row factory. ``binary`` fetches
    vectors as raw float arrays (no text parsing of 384 numbers per row)."""
    async with conn.cursor(row_factory=dict_row, binary=binary) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def fetch_one(
    conn: Conn, sql: LiteralString, params: Sequence[object] | None = None
) -> Row | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchone()


# ---- notes (the cycle engine's read model, migration 0002) ---------------------------------


class NoteNotFound(LookupError):
    """The note is not (yet) in the ``notes`` read model."""


async def load_note(conn: Conn, note_id: str) -> NoteIn:
    """The note as the miner takes it, dated by its meeting (held, else planned),
    else by its submission."""
    row = await fetch_one(
        conn,
        "SELECT n.id, n.text, n.language, n.programme_id, n.cycle_id, n.meeting_id,"
        " n.author_organisation, coalesce(m.held_at, m.starts_at, n.submitted_at) AS at"
        " FROM notes n LEFT JOIN meetings m ON m.cycle_id = n.cycle_id AND m.id = n.meeting_id"
        " WHERE n.id = %s",
        (note_id,),
    )
    if row is None:
        raise NoteNotFound(f"note {note_id!r} is not in the notes read model")
    return _note(row)


async def notes_to_reconcile(conn: Conn, scope: str, min_age_s: float, limit: int) -> list[NoteIn]:
    """Notes of ``scope`` submitted at least ``min_age_s`` ago that were never
    mined: no statements, no ThemesUpdated (``statement_count`` is NULL: a note
    with nothing to say is mined to zero statements, not forever), and not
    rejected by the miner. Oldest first."""
    rows = await fetch_all(
        conn,
        "SELECT n.id, n.text, n.language, n.programme_id, n.cycle_id, n.meeting_id,"
        " n.author_organisation, coalesce(m.held_at, m.starts_at, n.submitted_at) AS at"
        " FROM notes n LEFT JOIN meetings m ON m.cycle_id = n.cycle_id AND m.id = n.meeting_id"
        " WHERE n.statement_count IS NULL AND (%s = 'all' OR n.programme_id = %s)"
        " AND n.submitted_at <= now() - make_interval(secs => %s)"
        " AND NOT EXISTS (SELECT 1 FROM statements s WHERE s.note_id = n.id)"
        " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = n.cycle_id"
        "  AND e.type = %s AND e.payload->>'note_id' = n.id)"
        " ORDER BY n.submitted_at, n.id LIMIT %s",
        (scope, scope, min_age_s, EventType.NOTE_REJECTED.value, limit),
    )
    return [_note(r) for r in rows]


async def self_assessments_to_reconcile(
    conn: Conn, scope: str, min_age_s: float, limit: int
) -> list[NoteIn]:
    """Issue 13: the hosts' self-assessments are mined like notes. Each latest
    submission's free-text answers, as a note authored by the host for its
    visit (id :func:`peerlearn.self_assessment.note_id`), when it has no
    statements yet and no ThemesUpdated/NoteRejected; oldest first."""
    rows = await fetch_all(
        conn,
        "SELECT * FROM (SELECT s.cycle_id, s.meeting_id, s.version, s.host, s.language,"
        " s.answers, p.self_assessment_questions AS questions, c.programme_id, s.submitted_at,"
        " coalesce(m.held_at, m.starts_at, s.submitted_at) AS at,"
        " %s || s.cycle_id || ':' || s.meeting_id || ':' || s.version AS note_id"
        " FROM self_assessments s JOIN cycles c ON c.id = s.cycle_id"
        " JOIN programmes p ON p.id = c.programme_id"
        " LEFT JOIN meetings m ON m.cycle_id = s.cycle_id AND m.id = s.meeting_id"
        " WHERE (%s = 'all' OR c.programme_id = %s)"
        " AND s.submitted_at <= now() - make_interval(secs => %s)) sa"
        " WHERE NOT EXISTS (SELECT 1 FROM statements st WHERE st.note_id = sa.note_id)"
        " AND NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = sa.cycle_id"
        "  AND e.type = ANY(%s) AND e.payload->>'note_id' = sa.note_id)"
        " ORDER BY sa.submitted_at, sa.note_id LIMIT %s",
        (
            self_assessment.NOTE_PREFIX,
            scope,
            scope,
            min_age_s,
            [EventType.THEMES_UPDATED.value, EventType.NOTE_REJECTED.value],
            limit,
        ),
    )
    notes = []
    for r in rows:
        text = self_assessment.free_text(r["questions"] or [], r["answers"])
        if text:
            notes.append(
                NoteIn(
                    id=r["note_id"],
                    text=text,
                    language=r["language"],
                    programme=r["programme_id"],
                    cycle=r["cycle_id"],
                    meeting=r["meeting_id"],
                    organisation=r["host"],
                    date=_iso_date(r["at"]),
                )
            )
    return notes


def _note(row: Row) -> NoteIn:
    return NoteIn(
        id=row["id"],
        text=row["text"],
        language=row["language"],
        programme=row["programme_id"],
        cycle=row["cycle_id"],
        meeting=row["meeting_id"],
        organisation=row["author_organisation"],
        date=_iso_date(row["at"]),
    )


# ---- statements ---------------------------------------------------------------------------


def statement_from_row(row: Row) -> Statement:
    """A ``statements`` row (with at least :data:`STATEMENT_COLUMNS`) as a Statement."""
    data = {f: row[_COLUMN_OF_FIELD.get(f, f)] for f in _STORED_FIELDS}
    data["date"] = _iso_date(data["date"])
    data["lemmas"] = list(data["lemmas"] or [])
    return Statement.from_dict(data)


def statement_row(s: Statement, theme_id: str | None) -> tuple[object, ...]:
    """The values of :data:`STATEMENT_COLUMNS` (then ``theme_id``) for ``s``."""
    data = s.to_dict()
    data["date"] = _parse_date(s.date)
    return (*(data[f] for f in _STORED_FIELDS), theme_id)


@dataclass
class NoteStatements:
    """A note's statements and the theme id (or None) of each, to be written."""

    note_id: str
    statements: list[Statement]
    theme_ids: list[str | None]


_INSERT_STATEMENTS: LiteralString = (
    "INSERT INTO statements (id, note_id, position, programme_id, cycle_id, meeting_id,"
    " organisation_id, text, language, kind, heading, content_hash, lemmas, source_date,"
    " theme_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
    " ON CONFLICT (id) DO UPDATE SET position = EXCLUDED.position,"
    " programme_id = EXCLUDED.programme_id, cycle_id = EXCLUDED.cycle_id,"
    " meeting_id = EXCLUDED.meeting_id, organisation_id = EXCLUDED.organisation_id,"
    " text = EXCLUDED.text, language = EXCLUDED.language, kind = EXCLUDED.kind,"
    " heading = EXCLUDED.heading, content_hash = EXCLUDED.content_hash,"
    " lemmas = EXCLUDED.lemmas, source_date = EXCLUDED.source_date,"
    " theme_id = EXCLUDED.theme_id"
)
assert STATEMENT_COLUMNS == (
    "id",
    "note_id",
    "position",
    "programme_id",
    "cycle_id",
    "meeting_id",
    "organisation_id",
    "text",
    "language",
    "kind",
    "heading",
    "content_hash",
    "lemmas",
    "source_date",
)


async def write_statements(conn: Conn, notes: Sequence[NoteStatements]) -> None:
    """Replace the statements of many notes: one DELETE of the ones that are
    gone and one pipelined upsert batch for all of them (not two round trips
    per note). Idempotent, so a retried ingestion never duplicates."""
    rows = [
        statement_row(s, tid)
        for n in notes
        for s, tid in zip(n.statements, n.theme_ids, strict=True)
    ]
    await conn.execute(
        "DELETE FROM statements WHERE note_id = ANY(%s) AND NOT (id = ANY(%s))",
        ([n.note_id for n in notes], [r[0] for r in rows]),
    )
    if not rows:
        return
    rows.sort(key=lambda r: str(r[0]))  # one lock order for concurrent writers
    async with conn.cursor() as cur:
        await cur.executemany(_INSERT_STATEMENTS, rows)


async def scope_counts(conn: Conn, scope: str) -> tuple[int, int]:
    """Statements in ``scope`` and how many of them have a cached embedding."""
    where, params = scope_clause(scope)
    row = await fetch_one(
        conn,
        "SELECT count(*) AS n, count(e.content_hash) AS cached FROM statements s"
        " LEFT JOIN embeddings e USING (content_hash) WHERE " + where,
        params,
    )
    assert row is not None  # an aggregate always returns one row
    return int(row["n"]), int(row["cached"])


async def uncached_texts(
    conn: Conn, scope: str, offset: int, limit: int
) -> tuple[int, dict[str, str]]:
    """One batch of the scope's statements ordered by content hash (so repeated
    texts fall into one batch): how many, and the texts not cached, by hash."""
    where, params = scope_clause(scope)
    rows = await fetch_all(
        conn,
        "SELECT s.content_hash, CASE WHEN e.content_hash IS NULL THEN s.text END AS text"
        " FROM statements s LEFT JOIN embeddings e USING (content_hash) WHERE "
        + where
        + " ORDER BY s.content_hash, s.id OFFSET %s LIMIT %s",
        (*params, offset, limit),
    )
    todo: dict[str, str] = {}
    for r in rows:
        if r["text"] is not None:
            todo.setdefault(r["content_hash"], r["text"])
    return len(rows), todo


async def load_scope(conn: Conn, scope: str) -> tuple[list[Statement], np.ndarray]:
    """Every embedded statement of ``scope`` (ordered by id) and its embeddings."""
    where, params = scope_clause(scope)
    rows = await fetch_all(
        conn,
        "SELECT s.id, s.note_id, s.position, s.programme_id, s.cycle_id, s.meeting_id,"
        " s.organisation_id, s.text, s.language, s.kind, s.heading, s.content_hash, s.lemmas,"
        " s.source_date, e.embedding FROM statements s JOIN embeddings e USING (content_hash)"
        " WHERE NOT s.hidden AND " + where + " ORDER BY s.id",  # hidden: curation 0016
        params,
        binary=True,
    )
    if not rows:
        return [], np.zeros((0, 0), np.float32)
    return [statement_from_row(r) for r in rows], np.stack([as_array(r["embedding"]) for r in rows])


async def save_assignments(
    conn: Conn, statements: Sequence[Statement], theme_ids: Sequence[str | None], xy: np.ndarray
) -> None:
    """A re-mine's theme, kind and map position of every statement, in one UPDATE."""
    await conn.execute(
        "UPDATE statements s SET theme_id = u.theme_id, kind = u.kind, map_x = u.x,"
        " map_y = u.y FROM (SELECT unnest(%s::text[]) AS id,"
        " unnest(%s::text[]) AS theme_id, unnest(%s::text[]) AS kind,"
        " unnest(%s::real[]) AS x, unnest(%s::real[]) AS y) u WHERE s.id = u.id",
        (
            [s.id for s in statements],
            list(theme_ids),
            [s.kind for s in statements],
            [float(v) for v in xy[:, 0]],
            [float(v) for v in xy[:, 1]],
        ),
    )


# ---- embeddings cache (by content hash) ------------------------------------------------------


async def cached_embeddings(conn: Conn, hashes: Sequence[str]) -> dict[str, np.ndarray]:
    """The cached vectors among ``hashes`` (missing ones are absent)."""
    keys = list(dict.fromkeys(hashes))
    if not keys:
        return {}
    rows = await fetch_all(
        conn,
        "SELECT content_hash, embedding FROM embeddings WHERE content_hash = ANY(%s)",
        (keys,),
        binary=True,
    )
    return {r["content_hash"]: as_array(r["embedding"]) for r in rows}


async def store_embeddings(conn: Conn, items: dict[str, np.ndarray]) -> None:
    """Add vectors to the cache (first writer wins: the same text, the same vector)."""
    if not items:
        return
    # one pipelined batch (psycopg sends every row before reading any answer);
    # sorted keys keep concurrent writers from deadlocking on the unique index
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO embeddings (content_hash, embedding) VALUES (%s, %s)"
            " ON CONFLICT (content_hash) DO NOTHING",
            [(h, as_array(items[h])) for h in sorted(items)],
        )


# ---- theme models ------------------------------------------------------------------------------

# scope -> (updated_at, parsed model): the JSON is hundreds of kB, parsed once per version
_models: dict[str, tuple[datetime, ThemeModel]] = {}


def cached_theme_model(scope: str, version: datetime) -> ThemeModel | None:
    """The model of ``scope`` at ``version`` (its ``updated_at``) if this process
    has parsed it already; lets a caller that read the version in another query
    skip a round trip."""
    hit = _models.get(scope)
    return hit[1] if hit is not None and hit[0] == version else None


async def load_theme_model(conn: Conn, scope: str) -> ThemeModel | None:
    """The scope's ThemeModel, parsed once per version: the cheap ``updated_at``
    is read first, and the model's JSON only travels and gets parsed (off the
    event loop) when it changed."""
    row = await fetch_one(conn, "SELECT updated_at FROM theme_models WHERE scope = %s", (scope,))
    if row is None:
        return None
    model = cached_theme_model(scope, row["updated_at"])
    if model is not None:
        return model
    full = await fetch_one(
        conn, "SELECT model, updated_at FROM theme_models WHERE scope = %s", (scope,)
    )
    if full is None:
        return None
    model = await asyncio.to_thread(ThemeModel.from_dict, full["model"])
    _models[scope] = (full["updated_at"], model)
    return model


async def save_theme_model(conn: Conn, scope: str, model: ThemeModel, run_id: str) -> None:
    await conn.execute(
        "INSERT INTO theme_models (scope, model, run_id) VALUES (%s, %s, %s)"
        " ON CONFLICT (scope) DO UPDATE SET model = EXCLUDED.model,"
        " run_id = EXCLUDED.run_id, updated_at = now()",
        (scope, Jsonb(model.to_dict()), run_id),
    )


# ---- themes ------------------------------------------------------------------------------------


async def active_theme_ids(conn: Conn, scope: str) -> set[str]:
    rows = await fetch_all(
        conn, "SELECT id FROM themes WHERE scope = %s AND retired_at IS NULL", (scope,)
    )
    return {r["id"] for r in rows}


def _theme_row(scope: str, t: ThemeSummary, run_id: str) -> tuple[object, ...]:
    rec = t.recurrence  # nlp.themes.recurrence: lists of distinct ids, ISO dates
    return (
        theme_key(scope, t.id),
        scope,
        t.label,
        t.title or t.label,
        Jsonb(t.titles),
        Jsonb(t.keyphrases),
        t.size,
        Jsonb(t.languages),
        Jsonb(t.representatives),
        Jsonb(rec),
        len(rec["cycles"]),
        len(rec["organisations"]),
        len(rec["programmes"]),
        _parse_date(rec["first_seen"]),
        _parse_date(rec["last_seen"]),
        run_id,
    )


async def save_themes(
    conn: Conn, scope: str, themes: Sequence[ThemeSummary], retired: Iterable[str], run_id: str
) -> None:
    """Upsert a run's themes in one pipelined batch and retire the ones gone."""
    rows = sorted((_theme_row(scope, t, run_id) for t in themes), key=lambda r: str(r[0]))
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO themes (id, scope, label, title, titles, keyphrases, size, languages,"
                " representatives, recurrence, cycles, organisations, programmes, first_seen,"
                " last_seen, run_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                " ON CONFLICT (id) DO UPDATE SET scope = EXCLUDED.scope,"
                " label = EXCLUDED.label, title = EXCLUDED.title, titles = EXCLUDED.titles,"
                " keyphrases = EXCLUDED.keyphrases,"
                " size = EXCLUDED.size, languages = EXCLUDED.languages,"
                " representatives = EXCLUDED.representatives,"
                " recurrence = EXCLUDED.recurrence, cycles = EXCLUDED.cycles,"
                " organisations = EXCLUDED.organisations, programmes = EXCLUDED.programmes,"
                " first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen,"
                " run_id = EXCLUDED.run_id, updated_at = now(), retired_at = NULL",
                rows,
            )
    gone = sorted(retired)
    if gone:
        await conn.execute("UPDATE themes SET retired_at = now() WHERE id = ANY(%s)", (gone,))


# ---- per-programme theme labels (migration 0009) ------------------------------------------


@dataclass
class ProgrammeLabel:
    """A theme's label and keyphrases computed from one programme's statements."""

    theme_id: str
    programme_id: str
    label: str
    label_language: str
    keyphrases: list[str]
    size: int
    titles: dict[str, str] = field(default_factory=dict)  # language -> title (migration 0014)


async def programme_statements(conn: Conn, programme: str) -> list[tuple[Statement, str]]:
    """The programme's statements that sit in a theme, each with its theme id;
    not those of facilitators-only notes: the labels made from them are read by
    keys that may not read those notes (migration 0018's ``note_hidden``)."""
    rows = await fetch_all(
        conn,
        "SELECT id, note_id, position, programme_id, cycle_id, meeting_id, organisation_id,"
        " text, language, kind, heading, content_hash, lemmas, source_date, theme_id"
        " FROM statements WHERE programme_id = %s AND theme_id IS NOT NULL AND NOT note_hidden"
        " ORDER BY id",
        (programme,),
    )
    return [(statement_from_row(r), r["theme_id"]) for r in rows]


async def hidden_statement_ids(conn: Conn, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` belong to facilitators-only notes."""
    rows = await fetch_all(
        conn, "SELECT id FROM statements WHERE note_hidden AND id = ANY(%s)", (list(ids),)
    )
    return {r["id"] for r in rows}


async def programmes_missing_labels(conn: Conn, pairs: Iterable[tuple[str, str]]) -> set[str]:
    """Programmes among (theme id, programme id) ``pairs`` with no label row for that theme."""
    todo = sorted(set(pairs))
    if not todo:
        return set()
    rows = await fetch_all(
        conn,
        "SELECT DISTINCT p.programme_id FROM unnest(%s::text[], %s::text[]) AS p(theme_id,"
        " programme_id) WHERE NOT EXISTS (SELECT 1 FROM theme_labels l"
        " WHERE l.theme_id = p.theme_id AND l.programme_id = p.programme_id)",
        ([t for t, _ in todo], [p for _, p in todo]),
    )
    return {r["programme_id"] for r in rows}


async def save_programme_labels(
    conn: Conn, programme: str | None, labels: Sequence[ProgrammeLabel], theme_ids: Iterable[str]
) -> None:
    """Replace the label rows of ``theme_ids`` (of one programme, or of every
    programme when ``programme`` is None) with ``labels``."""
    ids = sorted(set(theme_ids))
    if programme is None:
        await conn.execute("DELETE FROM theme_labels WHERE theme_id = ANY(%s)", (ids,))
    else:
        await conn.execute(
            "DELETE FROM theme_labels WHERE programme_id = %s AND theme_id = ANY(%s)",
            (programme, ids),
        )
    rows = sorted(
        (
            (
                lb.theme_id,
                lb.programme_id,
                lb.label,
                lb.label_language,
                Jsonb(lb.keyphrases),
                lb.size,
                Jsonb(lb.titles),
            )
            for lb in labels
        ),
        key=lambda r: (str(r[0]), str(r[1])),
    )
    if rows:
        async with conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO theme_labels (theme_id, programme_id, label, label_language,"
                " keyphrases, size, titles) VALUES (%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (theme_id,"
                " programme_id) DO UPDATE SET label = EXCLUDED.label,"
                " label_language = EXCLUDED.label_language, keyphrases = EXCLUDED.keyphrases,"
                " size = EXCLUDED.size, titles = EXCLUDED.titles, updated_at = now()",
                rows,
            )


# ---- practices ---------------------------------------------------------------------------------


async def refresh_practices(
    conn: Conn, theme_ids: Iterable[str | None], run_id: str | None = None
) -> int:
    """Re-rank the practices of ``theme_ids`` from their statements (all
    languages): the one-idea practices and glosses of :func:`refresh_ideas`,
    which is what every reader uses (the per-statement ``practices`` table it
    also filled was read by nobody and is gone, migration 0021). Returns how
    many themes were refreshed."""
    ids = sorted({t for t in theme_ids if t})
    if not ids:
        return 0
    await refresh_ideas(conn, ids, run_id)
    return len(ids)


async def delete_practices(conn: Conn, theme_ids: Iterable[str]) -> None:
    ids = sorted(theme_ids)
    await conn.execute("DELETE FROM theme_practices WHERE theme_id = ANY(%s)", (ids,))
    await conn.execute("DELETE FROM statement_glosses WHERE theme_id = ANY(%s)", (ids,))


# ---- one idea, one practice; English glosses (migration 0014) ------------------------------

#: English candidates kept per non-English statement: the read side shows the
#: best one the caller may see (a restricted key must not read another
#: programme's English sentence as a gloss).
GLOSS_CANDIDATES = 5


async def refresh_ideas(conn: Conn, theme_ids: Sequence[str], run_id: str | None = None) -> int:
    """Recompute the one-idea practices (``nlp.practices.group_practices``) and
    the English gloss candidates (``nlp.glosses`` rule) of ``theme_ids`` from
    all their statements, on the language-debiased vectors of the theme's
    model (its own language means, estimated on the whole scope)."""
    ids = sorted(set(theme_ids))
    if not ids:
        return 0
    found = await fetch_all(
        conn,
        "SELECT s.id, s.theme_id, t.scope, s.kind, s.text, s.language, s.cycle_id,"
        " s.organisation_id, e.embedding FROM statements s JOIN embeddings e USING (content_hash)"
        " JOIN themes t ON t.id = s.theme_id WHERE s.theme_id = ANY(%s) ORDER BY s.theme_id, s.id",
        (ids,),
        binary=True,
    )
    models: dict[str, ThemeModel | None] = {}
    for scope in sorted({r["scope"] for r in found}):
        models[scope] = await load_theme_model(conn, scope)
    ideas, glosses = await asyncio.to_thread(_ideas_all, found, models, run_id)
    await conn.execute("DELETE FROM theme_practices WHERE theme_id = ANY(%s)", (ids,))
    await conn.execute("DELETE FROM statement_glosses WHERE theme_id = ANY(%s)", (ids,))
    async with conn.cursor() as c:
        if ideas:
            await c.executemany(
                "INSERT INTO theme_practices (id, theme_id, kind, statement_ids, wording_ids,"
                " score, rank, run_id) VALUES (%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (id) DO UPDATE"
                " SET theme_id = EXCLUDED.theme_id, kind = EXCLUDED.kind,"
                " statement_ids = EXCLUDED.statement_ids, wording_ids = EXCLUDED.wording_ids,"
                " score = EXCLUDED.score, rank = EXCLUDED.rank, run_id = EXCLUDED.run_id,"
                " updated_at = now()",
                ideas,
            )
        if glosses:
            await c.executemany(
                "INSERT INTO statement_glosses (statement_id, rank, english_statement_id,"
                " similarity, theme_id) VALUES (%s,%s,%s,%s,%s) ON CONFLICT (statement_id, rank)"
                " DO UPDATE SET english_statement_id = EXCLUDED.english_statement_id,"
                " similarity = EXCLUDED.similarity, theme_id = EXCLUDED.theme_id",
                glosses,
            )
    return len(ideas)


def _ideas_all(
    found: list[Row], models: dict[str, ThemeModel | None], run_id: str | None
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Rows of ``theme_practices`` and ``statement_glosses`` for the themes in ``found``."""
    by_theme: dict[str, list[int]] = {}
    for i, r in enumerate(found):
        by_theme.setdefault(r["theme_id"], []).append(i)
    # language-debiased vectors: with the scope's model means, else means
    # estimated over every fetched statement of the scope (not one theme: a
    # theme's own language means would also remove what its statements share)
    vectors = np.zeros((len(found), 0), np.float32)
    if found:
        raw_all = np.stack([as_array(r["embedding"]) for r in found])
        vectors = np.zeros_like(raw_all)
        for scope in sorted({r["scope"] for r in found}):
            sel = [i for i, r in enumerate(found) if r["scope"] == scope]
            model = models.get(scope)
            vectors[sel] = practice_vectors(
                raw_all[sel],
                [found[i]["language"] for i in sel],
                model.language_means if model is not None else None,
                model.global_mean if model is not None else None,
            )
    ideas: list[tuple[object, ...]] = []
    glosses: list[tuple[object, ...]] = []
    for tid, members in sorted(by_theme.items()):
        rs = [found[i] for i in members]
        langs = [r["language"] for r in rs]
        vecs = vectors[members]
        pi = [i for i, r in enumerate(rs) if r["kind"] in PRACTICE_KINDS]
        grouped = group_practices(
            [rs[i]["id"] for i in pi],
            [rs[i]["kind"] for i in pi],
            [rs[i]["text"] for i in pi],
            [langs[i] for i in pi],
            [rs[i]["organisation_id"] for i in pi],
            [rs[i]["cycle_id"] for i in pi],
            vecs[pi] if pi else np.zeros((0, vecs.shape[1]), np.float32),
        )
        row_of = {r["id"]: r for r in rs}
        for rank, p in enumerate(grouped, 1):
            wording_ids = {
                lang: next(
                    sid
                    for sid in p.statement_ids
                    if row_of[sid]["language"] == lang and row_of[sid]["text"] == text
                )
                for lang, text in p.wordings.items()
            }
            ideas.append(
                (p.id, tid, p.kind, p.statement_ids, Jsonb(wording_ids), p.score, rank, run_id)
            )
        en = [i for i, lang in enumerate(langs) if lang == "en"]
        if not en:
            continue
        others = [i for i, lang in enumerate(langs) if lang != "en"]
        if not others:
            continue
        sims = vecs[others] @ vecs[en].T  # (non-English, English)
        # best first; ties to the smaller id (rows come ordered by id): stable sort
        top = np.argsort(-sims, axis=1, kind="stable")[:, :GLOSS_CANDIDATES]
        for row, i in enumerate(others):
            for rank, k in enumerate(top[row].tolist(), 1):
                sim = float(sims[row, k])
                if sim < GLOSS_SIMILARITY:
                    break
                glosses.append((rs[i]["id"], rank, rs[en[k]]["id"], round(sim, 3), tid))
    ideas.sort(key=lambda r: str(r[0]))
    glosses.sort(key=lambda r: (str(r[0]), str(r[1]).zfill(4)))
    return ideas, glosses


# ---- mining runs -------------------------------------------------------------------------------


async def start_run(conn: Conn, run_id: str, scope: str, trigger: str, total: int) -> None:
    await conn.execute(
        "INSERT INTO mining_runs (id, scope, trigger, status, stage, total)"
        " VALUES (%s, %s, %s, 'running', 'encoding', %s)"
        " ON CONFLICT (id) DO UPDATE SET stage = 'encoding', total = EXCLUDED.total,"
        " status = 'running', done = 0",
        (run_id, scope, trigger, total),
    )


async def advance_run(conn: Conn, run_id: str, statements: int) -> None:
    await conn.execute(
        "UPDATE mining_runs SET done = LEAST(total, done + %s) WHERE id = %s",
        (statements, run_id),
    )


async def set_run_stage(conn: Conn, run_id: str, stage: str) -> None:
    await conn.execute("UPDATE mining_runs SET stage = %s WHERE id = %s", (stage, run_id))


async def complete_run(
    conn: Conn, run_id: str, theme_count: int, changes: Sequence[ThemeChange]
) -> None:
    await conn.execute(
        "UPDATE mining_runs SET status = 'completed', stage = 'done', done = total,"
        " theme_count = %s, changes = %s, finished_at = now() WHERE id = %s",
        (theme_count, Jsonb([c.to_dict() for c in changes]), run_id),
    )


async def fail_run(conn: Conn, run_id: str, error: str) -> None:
    await conn.execute(
        "UPDATE mining_runs SET status = 'failed', error = %s, finished_at = now() WHERE id = %s",
        (error[:2000], run_id),
    )


# ---- events ------------------------------------------------------------------------------------


async def append_cycle_event(
    pool: AsyncConnectionPool,
    cycle_id: str,
    etype: EventType,
    payload: dict[str, object],
    idempotency_key: str,
) -> None:
    """One event on a cycle's stream from the miner (a note rejected, themes of a
    reconciled note), idempotent by ``idempotency_key``."""
    async with pool.connection() as conn, conn.transaction():
        await eventstore.append(
            conn,
            stream_id=cycle_id,
            type=etype,
            payload=dict(payload),
            idempotency_key=idempotency_key,
            occurred_at=datetime.now(UTC),
        )


async def append_mining_events(
    pool: AsyncConnectionPool, run_id: str, events: Sequence[tuple[EventType, dict[str, object]]]
) -> None:
    """A run's events on the ``mining`` stream, each idempotent by (run, index),
    so a retried activity appends nothing twice."""
    now = datetime.now(UTC)
    for i, (etype, payload) in enumerate(events):
        async with pool.connection() as conn, conn.transaction():
            await eventstore.append(
                conn,
                stream_id=MINING_STREAM,
                type=etype,
                payload=dict(payload),
                idempotency_key=f"mining:{run_id}:{i}",
                occurred_at=now,
            )
