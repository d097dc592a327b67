"""Shared pieces of the analyst API: filters, the principal's programme grant,
cursor pagination, and the queries that themes, practices, exports, the UI
and the wrap-up report all need.

Every query starts from ``statements`` filtered by the caller's grant, so a
theme, count, practice or source from a programme the key cannot see never
shows up — themes are cross-programme, their visible part is what is counted.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

import pydantic_core
from fastapi import Depends, Query, Request, Response
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from api.auth import Principal
from api.problems import Problem
from peerlearn.settings import Settings

Kind = Literal["lesson", "recommendation", "best_practice", "challenge", "success", "other"]
PRACTICE_KINDS = ["lesson", "recommendation", "best_practice"]


@dataclass
class Filters:
    programme: str | None = None
    cycle: str | None = None
    language: str | None = None
    kind: str | None = None
    organisation: str | None = None
    since: date | None = None
    until: date | None = None
    min_cycles: int = 0


async def _filters(  # async: a sync dependency costs a thread-pool hop per request
    programme: Annotated[str | None, Query(description="programme id")] = None,
    cycle: Annotated[str | None, Query(description="cycle id")] = None,
    language: Annotated[
        str | None, Query(pattern=r"^[a-z]{2}$", description="ISO 639-1 code, e.g. en, sv, pl")
    ] = None,
    kind: Annotated[Kind | None, Query(description="statement kind")] = None,
    organisation: Annotated[str | None, Query(description="author organisation id")] = None,
    since: Annotated[date | None, Query(description="statements dated on or after")] = None,
    until: Annotated[date | None, Query(description="statements dated on or before")] = None,
    min_cycles: Annotated[
        int, Query(ge=0, le=1000, description="themes said in at least this many distinct cycles")
    ] = 0,
) -> Filters:
    if since and until and since > until:
        raise Problem(422, "since must not be after until")
    return Filters(programme, cycle, language, kind, organisation, since, until, min_cycles)


FiltersDep = Annotated[Filters, Depends(_filters)]


# The hot read endpoints (themes, search, practices) take the pool and settings
# through async dependencies: FastAPI runs a plain ``def`` dependency (as in
# api/deps.py) in the thread pool, two thread hand-offs per request under load.
async def _pool(request: Request) -> AsyncConnectionPool:
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


FastPool = Annotated[AsyncConnectionPool, Depends(_pool)]
FastSettings = Annotated[Settings, Depends(_settings)]


def json_response(body: Any) -> Response:
    """Serialise once with pydantic-core (dates as ISO strings, as FastAPI would),
    skipping FastAPI's validation and ``jsonable_encoder`` walk of a plain dict."""
    return Response(pydantic_core.to_json(body), media_type="application/json")


def statement_where(
    principal: Principal, f: Filters, alias: str = "s", *, kind: bool = True
) -> tuple[str, dict[str, Any]]:
    """SQL conditions on ``statements`` for the grant and the filters (named params)."""
    a = alias
    conds: list[str] = []
    params: dict[str, Any] = {}
    visible = principal.programme_filter()
    if visible is not None:
        conds.append(f"{a}.programme_id = ANY(%(visible)s)")
        params["visible"] = visible
    if f.programme:
        principal.check_programme(f.programme)
        conds.append(f"{a}.programme_id = %(programme)s")
        params["programme"] = f.programme
    for col, key in (
        ("cycle_id", "cycle"),
        ("language", "language"),
        ("organisation_id", "organisation"),
    ):
        v = getattr(f, key)
        if v:
            conds.append(f"{a}.{col} = %({key})s")
            params[key] = v
    if kind and f.kind:
        conds.append(f"{a}.kind = %(kind)s")
        params["kind"] = f.kind
    if f.since:
        conds.append(f"{a}.source_date >= %(since)s")
        params["since"] = f.since
    if f.until:
        conds.append(f"{a}.source_date <= %(until)s")
        params["until"] = f.until
    return (" AND ".join(conds) or "TRUE"), params


def visible_clause(principal: Principal, alias: str = "s") -> tuple[str, dict[str, Any]]:
    visible = principal.programme_filter()
    if visible is None:
        return "TRUE", {}
    return f"{alias}.programme_id = ANY(%(visible)s)", {"visible": visible}


# ---- cursors ---------------------------------------------------------------------------


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, n: int) -> list[Any] | None:
    if not cursor:
        return None
    try:
        pad = "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(cursor + pad))
        if not isinstance(values, list) or len(values) != n:
            raise ValueError
        return values
    except (ValueError, TypeError) as exc:
        raise Problem(400, "invalid cursor; pass the next_cursor of a previous page") from exc


# ---- themes ------------------------------------------------------------------------------

THEME_SORTS = {
    # sort name -> (key expressions, all ascending so a row comparison pages)
    "recurrence": ["-a.cycles", "-a.organisations", "-a.size", "a.theme_id"],
    "size": ["-a.size", "-a.cycles", "a.theme_id"],
    "recency": [
        "-(coalesce(a.last_seen, DATE '1900-01-01') - DATE '1900-01-01')",
        "-a.size",
        "a.theme_id",
    ],
}


async def list_themes(
    conn: AsyncConnection[Any],
    principal: Principal,
    f: Filters,
    *,
    sort: str = "recurrence",
    limit: int = 50,
    cursor: str | None = None,
    theme_ids: list[str] | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    where, params = statement_where(principal, f)
    keys = THEME_SORTS[sort]
    after = decode_cursor(cursor, len(keys))
    if theme_ids is not None:
        where += " AND s.theme_id = ANY(%(theme_ids)s)"
        params["theme_ids"] = theme_ids
    page_cond = ""
    if after is not None:
        placeholders = ", ".join(f"%(c{i})s" for i in range(len(keys)))
        page_cond = f"AND ({', '.join(keys)}) > ({placeholders})"
        for i, v in enumerate(after):
            params[f"c{i}"] = v
    params["min_cycles"] = f.min_cycles
    params["limit"] = limit + 1
    ctes = _facet_ctes(principal, f, theme_ids) if facets_answer(f) else _statement_ctes(where)
    sql = f"""
        {ctes}
        SELECT a.theme_id AS id, t.label, t.keyphrases, a.size, l.languages, a.cycles,
               a.organisations, a.programmes, a.first_seen, a.last_seen,
               {", ".join(f"{k} AS k{i}" for i, k in enumerate(keys))}
        FROM a JOIN themes t ON t.id = a.theme_id AND t.retired_at IS NULL
        JOIN l ON l.theme_id = a.theme_id
        WHERE a.cycles >= %(min_cycles)s {page_cond}
        ORDER BY {", ".join(keys)}
        LIMIT %(limit)s
    """
    cur = await conn.cursor(row_factory=dict_row).execute(sql, params)
    rows = [dict(r) for r in await cur.fetchall()]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor([last[f"k{i}"] for i in range(len(keys))])
    for r in rows:
        for i in range(len(keys)):
            r.pop(f"k{i}", None)
        r["languages"] = r["languages"] or {}
    return rows, next_cursor


def facets_answer(f: Filters) -> bool:
    """Whether ``theme_facets`` (migration 0005) holds the answer: its counters are
    kept per theme, programme and language, so the grant and the ``programme`` and
    ``language`` filters select rows of it; cycle, organisation, kind and date
    filters need the statements themselves."""
    return not (f.cycle or f.organisation or f.kind or f.since or f.until)


def _facet_ctes(principal: Principal, f: Filters, theme_ids: list[str] | None) -> str:
    """CTEs ``a`` (per theme: size, distinct cycles / organisations / programmes,
    first and last date) and ``l`` (statements per language) from the counters
    in ``theme_facets``: a few hundred small rows instead of every statement,
    for the 50 ms p95 budget of GET /v1/themes. Same numbers as
    :func:`_statement_ctes` (the parameters are :func:`statement_where`'s)."""
    conds = []
    if principal.programme_filter() is not None:
        conds.append("x.programme_id = ANY(%(visible)s)")
    if f.programme:
        conds.append("x.programme_id = %(programme)s")
    if f.language:
        conds.append("x.language = %(language)s")
    if theme_ids is not None:
        conds.append("x.theme_id = ANY(%(theme_ids)s)")
    return f"""
        WITH x AS (
            SELECT theme_id, programme_id, language, dim, value, n
            FROM theme_facets x WHERE {" AND ".join(conds) or "TRUE"}
        ), v AS (  -- distinct values first (hashing), then counting: no big sort
            SELECT theme_id, (count(*) FILTER (WHERE dim = 'c'))::int AS cycles,
                   (count(*) FILTER (WHERE dim = 'o'))::int AS organisations,
                   (min(value) FILTER (WHERE dim = 'd'))::date AS first_seen,
                   (max(value) FILTER (WHERE dim = 'd'))::date AS last_seen
            FROM (SELECT DISTINCT theme_id, dim, value FROM x WHERE dim <> 'n') u
            GROUP BY theme_id
        ), a AS (
            SELECT x.theme_id, sum(x.n)::int AS size,
                   (count(DISTINCT x.programme_id) FILTER (WHERE x.programme_id <> ''))::int
                       AS programmes,
                   coalesce(max(v.cycles), 0) AS cycles,
                   coalesce(max(v.organisations), 0) AS organisations,
                   max(v.first_seen) AS first_seen, max(v.last_seen) AS last_seen
            FROM x LEFT JOIN v USING (theme_id) WHERE x.dim = 'n' GROUP BY x.theme_id
        ), l AS (
            SELECT theme_id, jsonb_object_agg(language, n ORDER BY language) AS languages
            FROM (SELECT theme_id, language, sum(n)::int AS n FROM x WHERE dim = 'n'
                  GROUP BY 1, 2) y
            GROUP BY theme_id
        )"""


def _statement_ctes(where: str) -> str:
    """The same CTEs aggregated from the filtered statements (cycle, organisation,
    kind and date filters, each column indexed)."""
    return f"""
        WITH f AS (
            SELECT s.theme_id, s.language, s.cycle_id, s.organisation_id, s.programme_id,
                   s.source_date
            FROM statements s WHERE s.theme_id IS NOT NULL AND {where}
        ), a AS (
            SELECT theme_id, count(*)::int AS size,
                   count(DISTINCT cycle_id)::int AS cycles,
                   count(DISTINCT organisation_id)::int AS organisations,
                   count(DISTINCT programme_id)::int AS programmes,
                   min(source_date) AS first_seen, max(source_date) AS last_seen
            FROM f GROUP BY theme_id
        ), l AS (
            SELECT theme_id, jsonb_object_agg(language, n ORDER BY language) AS languages
            FROM (SELECT theme_id, language, count(*)::int AS n FROM f GROUP BY 1, 2) x
            GROUP BY theme_id
        )"""


async def theme_practices(
    conn: AsyncConnection[Any],
    principal: Principal,
    f: Filters,
    *,
    theme_ids: list[str] | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Practices ranked by independent support the caller can see (distinct cycles +
    organisations of the visible supporting statements), then by the mined score."""
    where, params = statement_where(principal, f)
    vis, vparams = visible_clause(principal, "s2")
    params.update(vparams)
    if theme_ids is not None:
        where += " AND p.theme_id = ANY(%(theme_ids)s)"
        params["theme_ids"] = theme_ids
    keys = ["-x.support", "-x.score", "x.statement_id"]
    after = decode_cursor(cursor, len(keys))
    page_cond = ""
    if after is not None:
        page_cond = "WHERE (-x.support, -x.score, x.statement_id) > (%(c0)s, %(c1)s, %(c2)s)"
        params.update({f"c{i}": v for i, v in enumerate(after)})
    params["limit"] = limit + 1
    sql = f"""
        SELECT * FROM (
            SELECT p.statement_id, p.theme_id, t.label AS theme_label, p.kind, p.audience,
                   p.score, s.text, s.language, s.note_id, s.meeting_id, s.cycle_id,
                   s.programme_id, s.organisation_id, s.source_date,
                   sup.cycles AS support_cycles, sup.organisations AS support_organisations,
                   sup.statements AS support_count, sup.sources,
                   (sup.cycles + sup.organisations) AS support
            FROM practices p
            JOIN statements s ON s.id = p.statement_id
            JOIN themes t ON t.id = p.theme_id AND t.retired_at IS NULL
            CROSS JOIN LATERAL (
                SELECT count(DISTINCT s2.cycle_id)::int AS cycles,
                       count(DISTINCT s2.organisation_id)::int AS organisations,
                       count(*)::int AS statements,
                       jsonb_agg(jsonb_build_object(
                           'statement_id', s2.id, 'note_id', s2.note_id,
                           'meeting_id', s2.meeting_id, 'cycle_id', s2.cycle_id,
                           'programme_id', s2.programme_id,
                           'organisation_id', s2.organisation_id, 'date', s2.source_date,
                           'language', s2.language, 'text', s2.text)
                           ORDER BY s2.source_date, s2.id) AS sources
                FROM statements s2
                WHERE s2.id = ANY(p.support_statements) AND {vis}
            ) sup
            WHERE {where} AND s.theme_id = p.theme_id
        ) x {page_cond}
        ORDER BY -x.support, -x.score, x.statement_id
        LIMIT %(limit)s
    """
    cur = await conn.cursor(row_factory=dict_row).execute(sql, params)
    rows = [dict(r) for r in await cur.fetchall()]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor([-last["support"], -float(last["score"]), last["statement_id"]])
    return rows, next_cursor
