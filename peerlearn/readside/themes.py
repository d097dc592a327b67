"""Themes with their recurrence, one theme's detail, and practices ranked by support.

All counts are over the statements the caller may see (see :mod:`.filters`).
``GET /v1/themes`` has a 50 ms p95 budget: without cycle, organisation, kind or
date filters the counts come from the ``theme_facets`` counters (migration 0005),
for keys that may not read facilitators-only notes (issue 12) only those of the
other notes' statements (migration 0018).
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from nlp.practices import audience_of
from peerlearn.access import NotFound, Principal
from peerlearn.readside.filters import (
    Filters,
    decode_cursor,
    encode_cursor,
    facilitator,
    label_columns,
    label_scope,
    statement_where,
    title_columns,
    visible_clause,
)
from peerlearn.readside.glosses import attach, glosses_for

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
    after = decode_cursor(cursor, len(keys), (int,) * (len(keys) - 1) + (str,))
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
    label, keyphrases = label_columns(label_scope(principal, f), params)
    title, titles = title_columns(label_scope(principal, f), params)
    ctes = _facet_ctes(principal, f, theme_ids) if facets_answer(f) else _statement_ctes(where)
    sql = f"""
        {ctes}
        SELECT a.theme_id AS id, {label} AS label, {title} AS title, {titles} AS titles,
               {keyphrases} AS keyphrases, a.size,
               l.languages, a.cycles,
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
        r["titles"] = r["titles"] or {}
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
    :func:`_statement_ctes` (the parameters are :func:`statement_where`'s).

    The statements of facilitators-only notes are counted in their own rows
    (``hidden``, migration 0018, kept by triggers on statements and notes): a
    key that may not read those notes (issue 12) reads only the other rows, so
    a theme's size, cycles, organisations, languages and dates, and whether it
    is listed at all, are those of its visible statements; admin and manager
    keys read both classes (a value in both is still one distinct value)."""
    conds = []
    if principal.programme_filter() is not None:
        conds.append("x.programme_id = ANY(%(visible)s)")
    if f.programme:
        conds.append("x.programme_id = %(programme)s")
    if f.language:
        conds.append("x.language = %(language)s")
    if theme_ids is not None:
        conds.append("x.theme_id = ANY(%(theme_ids)s)")
    if not facilitator(principal):
        conds.append("NOT x.hidden")
    x = f"""x AS (
            SELECT theme_id, programme_id, language, dim, value, n
            FROM theme_facets x WHERE {" AND ".join(conds) or "TRUE"}
        )"""
    return f"""
        WITH {x}, v AS (  -- distinct values first (hashing), then counting: no big sort
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
    """One entry per idea (``theme_practices``, migration 0014: the statements of
    a theme that say the same thing in any language), ranked by independent
    support the caller can see: distinct organisations + cycles among the
    members inside the grant and the programme filter (:func:`_member_scope`;
    a member without one counts as its own), then by the mined score.

    An idea is listed when one of its members passes the filters; its wordings
    (one per language, the mined wording when visible, else the first visible
    member in that language) come from those members, its sources from every
    member in scope, each note once. Non-English wordings carry the English
    gloss the caller may see (:mod:`.glosses`)."""
    where, params = statement_where(principal, f)
    vis = _member_scope(principal, f, params)
    theme_cond = ""
    if theme_ids is not None:
        theme_cond = "AND p.theme_id = ANY(%(theme_ids)s)"
        params["theme_ids"] = theme_ids
    keys = ["-x.support", "-x.score", "x.id"]
    after = decode_cursor(cursor, len(keys), (int, (int, float), str))
    page_cond = ""
    if after is not None:
        page_cond = "WHERE (-x.support, -x.score, x.id) > (%(c0)s, %(c1)s, %(c2)s)"
        params.update({f"c{i}": v for i, v in enumerate(after)})
    params["limit"] = limit + 1
    label, _ = label_columns(label_scope(principal, f), params)
    sql = f"""
        WITH m AS (
            SELECT p.id, p.theme_id, p.kind, p.score, s.id AS sid, s.organisation_id,
                   s.cycle_id, ({where}) AS matched
            FROM theme_practices p
            JOIN themes t ON t.id = p.theme_id AND t.retired_at IS NULL
            CROSS JOIN LATERAL unnest(p.statement_ids) AS u(sid)
            JOIN statements s ON s.id = u.sid AND s.theme_id = p.theme_id
            WHERE {vis} {theme_cond}
        ), a AS (
            SELECT id, theme_id, kind, score,
                   count(DISTINCT coalesce(organisation_id, '?' || sid))::int
                       AS support_organisations,
                   count(DISTINCT coalesce(cycle_id, '?' || sid))::int AS support_cycles,
                   count(*)::int AS support_count
            FROM m GROUP BY id, theme_id, kind, score HAVING bool_or(matched)
        )
        SELECT x.*, {label} AS theme_label FROM (
            SELECT a.*, (a.support_organisations + a.support_cycles) AS support FROM a
        ) x JOIN themes t ON t.id = x.theme_id {page_cond}
        ORDER BY -x.support, -x.score, x.id
        LIMIT %(limit)s
    """
    cur = await conn.cursor(row_factory=dict_row).execute(sql, params)
    rows = [dict(r) for r in await cur.fetchall()]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = encode_cursor([-last["support"], -float(last["score"]), last["id"]])
    await _fill_ideas(conn, principal, f, rows)
    return rows, next_cursor


def _member_scope(principal: Principal, f: Filters, params: dict[str, Any]) -> str:
    """The members of an idea that count and show: the grant and the programme
    filter (a programme's page or report never cites another programme);
    language, kind, cycle, organisation and date filters only choose which
    ideas and wordings are listed."""
    vis, vparams = visible_clause(principal, "s")
    params.update(vparams)
    if f.programme:
        params["programme"] = f.programme
        vis += " AND s.programme_id = %(programme)s"
    return vis


async def _fill_ideas(
    conn: AsyncConnection[Any], principal: Principal, f: Filters, rows: list[dict[str, Any]]
) -> None:
    """Wordings, title, sources and glosses of a page of ideas."""
    if not rows:
        return
    where, params = statement_where(principal, f)
    vis = _member_scope(principal, f, params)
    params["ids"] = [r["id"] for r in rows]
    cur = await conn.cursor(row_factory=dict_row).execute(
        f"SELECT p.id AS practice_id, p.wording_ids, s.id AS statement_id, s.text, s.language,"
        f" s.note_id, s.meeting_id, s.cycle_id, s.programme_id, s.organisation_id,"
        f" s.source_date, ({where}) AS matched"
        f" FROM theme_practices p CROSS JOIN LATERAL unnest(p.statement_ids) AS u(sid)"
        f" JOIN statements s ON s.id = u.sid AND s.theme_id = p.theme_id"
        f" WHERE p.id = ANY(%(ids)s) AND {vis} ORDER BY p.id, s.source_date, s.id",
        params,
    )
    members: dict[str, list[dict[str, Any]]] = {}
    mined: dict[str, dict[str, str]] = {}
    for m in await cur.fetchall():
        members.setdefault(m["practice_id"], []).append(dict(m))
        mined[m["practice_id"]] = m["wording_ids"] or {}
    chosen: list[dict[str, Any]] = []
    for r in rows:
        ms = members.get(r["id"], [])
        shown = [m for m in ms if m["matched"]] or ms
        wordings: dict[str, dict[str, Any]] = {}
        for lang in sorted({m["language"] for m in shown}):
            in_lang = [m for m in shown if m["language"] == lang]
            want = mined.get(r["id"], {}).get(lang)
            best = next((m for m in in_lang if m["statement_id"] == want), in_lang[0])
            wordings[lang] = {"statement_id": best["statement_id"], "text": best["text"]}
        counts: dict[str, int] = {}
        for m in shown:
            counts[m["language"]] = counts.get(m["language"], 0) + 1
        title_lang = (
            "en" if "en" in wordings else min(counts, key=lambda lg: (-counts[lg], lg), default="")
        )
        head = next(
            (
                m
                for m in shown
                if m["statement_id"] == wordings.get(title_lang, {}).get("statement_id")
            ),
            None,
        )
        sources: dict[str, dict[str, Any]] = {}
        for m in ms:  # each note once
            sources.setdefault(
                m["note_id"],
                {
                    "statement_id": m["statement_id"],
                    "note_id": m["note_id"],
                    "meeting_id": m["meeting_id"],
                    "cycle_id": m["cycle_id"],
                    "programme_id": m["programme_id"],
                    "organisation_id": m["organisation_id"],
                    "date": m["source_date"],
                    "language": m["language"],
                    "text": m["text"],
                },
            )
        r.update(
            {
                "title": head["text"] if head else "",
                "title_language": title_lang,
                "statement_id": head["statement_id"] if head else None,
                "text": head["text"] if head else "",
                "language": title_lang,
                "audience": audience_of(head["text"], title_lang) if head else None,
                "wordings": wordings,
                "statement_ids": [m["statement_id"] for m in ms],
                "sources": list(sources.values()),
                "note_id": head["note_id"] if head else None,
                "meeting_id": head["meeting_id"] if head else None,
                "cycle_id": head["cycle_id"] if head else None,
                "programme_id": head["programme_id"] if head else None,
                "organisation_id": head["organisation_id"] if head else None,
                "source_date": head["source_date"] if head else None,
            }
        )
        chosen += [w for lang, w in wordings.items() if lang != "en"]
    attach(
        chosen,
        await glosses_for(conn, principal, (w["statement_id"] for w in chosen)),
        "statement_id",
    )


async def theme_detail(
    conn: AsyncConnection[Any],
    principal: Principal,
    f: Filters,
    theme_id: str,
    *,
    sources_limit: int = 200,
) -> dict[str, Any]:
    """One theme as the caller sees it: representatives per language, ranked
    practices, the notes it came from, recurrence and the monthly trend.

    :class:`NotFound` when the theme does not exist or has no visible statement
    (the two are not told apart)."""
    tparams: dict[str, Any] = {"theme_id": theme_id}
    label, keyphrases = label_columns(label_scope(principal, f), tparams)
    title, titles = title_columns(label_scope(principal, f), tparams)
    cur = await conn.cursor(row_factory=dict_row).execute(
        f"SELECT t.id, {label} AS label, {title} AS title, {titles} AS titles,"
        f" {keyphrases} AS keyphrases, t.representatives,"
        " t.retired_at, t.scope, t.updated_at FROM themes t WHERE t.id = %(theme_id)s",
        tparams,
    )
    theme = await cur.fetchone()
    where, params = statement_where(principal, f)
    params["theme_id"] = theme_id
    summary, _ = await list_themes(conn, principal, f, theme_ids=[theme_id], limit=1)
    if theme is None or not summary:
        raise NotFound(f"no theme {theme_id!r} with statements you can see")
    cur = await conn.cursor(row_factory=dict_row).execute(
        f"SELECT s.id, s.text, s.language, s.kind, s.note_id, s.meeting_id, s.cycle_id,"
        f" s.programme_id, s.organisation_id, s.source_date FROM statements s"
        f" WHERE s.theme_id = %(theme_id)s AND {where} ORDER BY s.id",
        params,
    )
    statements = [dict(r) for r in await cur.fetchall()]
    cur = await conn.cursor(row_factory=dict_row).execute(
        f"SELECT to_char(date_trunc('month', s.source_date), 'YYYY-MM') AS month,"
        f" count(*)::int AS statements, count(DISTINCT s.cycle_id)::int AS cycles"
        f" FROM statements s WHERE s.theme_id = %(theme_id)s AND {where}"
        f" AND s.source_date IS NOT NULL GROUP BY 1 ORDER BY 1",
        params,
    )
    trend = [dict(r) for r in await cur.fetchall()]
    practices, _ = await theme_practices(conn, principal, f, theme_ids=[theme_id], limit=50)
    by_id = {s["id"]: s for s in statements}
    reps: dict[str, list[dict[str, Any]]] = {}
    for lang, ids in (theme["representatives"] or {}).items():
        for sid in ids if isinstance(ids, list) else []:
            key = sid if isinstance(sid, str) else (sid or {}).get("id")
            if key in by_id:
                reps.setdefault(lang, []).append({"id": key, "text": by_id[key]["text"]})
    for s in statements:  # languages without a stored representative
        if s["language"] not in reps:
            reps[s["language"]] = [{"id": s["id"], "text": s["text"]}]
    shown = [r for lang, rs in reps.items() if lang != "en" for r in rs]
    attach(shown, await glosses_for(conn, principal, (r["id"] for r in shown)), "id")
    sources: dict[str, dict[str, Any]] = {}
    for s in statements:
        src = sources.setdefault(
            s["note_id"],
            {
                "note_id": s["note_id"],
                "meeting_id": s["meeting_id"],
                "cycle_id": s["cycle_id"],
                "programme_id": s["programme_id"],
                "organisation_id": s["organisation_id"],
                "date": s["source_date"],
                "statements": 0,
            },
        )
        src["statements"] += 1
    s0 = summary[0]
    return {
        "id": theme["id"],
        "label": theme["label"],
        "title": theme["title"],
        "titles": theme["titles"] or {},
        "keyphrases": theme["keyphrases"],
        "size": s0["size"],
        "languages": s0["languages"],
        "representatives": reps,
        "practices": practices,
        "sources": sorted(sources.values(), key=lambda x: (str(x["date"]), x["note_id"]))[
            :sources_limit
        ],
        "recurrence": {
            "cycles": s0["cycles"],
            "organisations": s0["organisations"],
            "programmes": s0["programmes"],
            "languages": len(s0["languages"]),
            "first_seen": s0["first_seen"],
            "last_seen": s0["last_seen"],
        },
        "trend": trend,
        "updated_at": theme["updated_at"],
    }
