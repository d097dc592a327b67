"""GET /v1/themes and /v1/themes/{id}: recurring themes across cycles and languages."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from psycopg.rows import dict_row

from api.analyst import (
    FastPool,
    FiltersDep,
    json_response,
    list_themes,
    statement_where,
    theme_practices,
)
from api.auth import CurrentPrincipal
from api.problems import Problem

router = APIRouter(prefix="/v1/themes", tags=["analyst"])


@router.get(
    "",
    summary="Themes with statement counts per language (ISO 639-1)",
    response_model=dict[str, Any],
)
async def get_themes(
    pool: FastPool,
    principal: CurrentPrincipal,
    filters: FiltersDep,
    sort: Annotated[Literal["recurrence", "size", "recency"], Query()] = "recurrence",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Response:
    async with pool.connection() as conn:
        items, next_cursor = await list_themes(
            conn, principal, filters, sort=sort, limit=limit, cursor=cursor
        )
    return json_response({"items": items, "next_cursor": next_cursor})


@router.get("/{theme_id}", summary="One theme: representatives, practices, sources, trend")
async def get_theme(
    theme_id: str,
    pool: FastPool,
    principal: CurrentPrincipal,
    filters: FiltersDep,
    sources_limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT id, label, keyphrases, representatives, retired_at, scope, updated_at"
            " FROM themes WHERE id = %s",
            (theme_id,),
        )
        theme = await cur.fetchone()
        where, params = statement_where(principal, filters)
        params["theme_id"] = theme_id
        summary, _ = await list_themes(conn, principal, filters, theme_ids=[theme_id], limit=1)
        if theme is None or not summary:
            raise Problem(404, f"no theme {theme_id!r} with statements you can see")
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
        practices, _ = await theme_practices(
            conn, principal, filters, theme_ids=[theme_id], limit=50
        )
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
