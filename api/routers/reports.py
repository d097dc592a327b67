"""Wrap-up reports: GET /v1/reports/cycles/{id} and /v1/reports/programmes/{id}.

``format=json`` (default), ``markdown`` or ``html`` (a printable page). The
cycle report is built live from the mining tables, so it is current even
before the cycle's wrap-up step; the cycle's own action items come from the
cycle engine's ``action_items`` table.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from psycopg.rows import dict_row

from api.auth import CurrentPrincipal
from api.deps import Pool
from api.problems import Problem
from peerlearn.wrapup import build_report, render_html, render_markdown

router = APIRouter(prefix="/v1/reports", tags=["reports"])

Format = Annotated[Literal["json", "markdown", "html"], Query(description="json, markdown or html")]


def _respond(report: dict[str, Any], fmt: str) -> Response:
    if fmt == "markdown":
        return PlainTextResponse(render_markdown(report), media_type="text/markdown; charset=utf-8")
    if fmt == "html":
        return HTMLResponse(render_html(report))
    from fastapi.encoders import jsonable_encoder

    return JSONResponse(jsonable_encoder(report))


async def _rows(conn: Any, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    try:
        async with conn.transaction():
            cur = await conn.cursor(row_factory=dict_row).execute(sql, params)
            return [dict(r) for r in await cur.fetchall()]
    except Exception:  # the cycle engine's tables are not there (mining-only deployments)
        return []


@router.get("/cycles/{cycle_id}", summary="Wrap-up report of one cycle")
async def cycle_report(
    cycle_id: str, pool: Pool, principal: CurrentPrincipal, format: Format = "json"
) -> Response:
    async with pool.connection() as conn:
        cycle = await _rows(
            conn, "SELECT id, programme_id, title FROM cycles WHERE id = %s", (cycle_id,)
        )
        programme_id = cycle[0]["programme_id"] if cycle else None
        if programme_id is None:
            found = await _rows(
                conn,
                "SELECT programme_id FROM statements WHERE cycle_id = %s LIMIT 1",
                (cycle_id,),
            )
            programme_id = found[0]["programme_id"] if found else None
        if programme_id is None and not cycle:
            raise Problem(404, f"no cycle {cycle_id!r}")
        if programme_id:
            principal.check_programme(programme_id)
        actions = await _rows(
            conn,
            "SELECT id, owner, what, due_at, meeting_id, status FROM action_items"
            " WHERE cycle_id = %s AND status = 'open' ORDER BY due_at, id",
            (cycle_id,),
        )
        title = f"Lessons learnt — {cycle[0]['title']}" if cycle else None
        report = await build_report(
            conn,
            cycle_id=cycle_id,
            programme_id=programme_id,
            principal=principal,
            action_items=actions,
            title=title,
        )
    return _respond(report, format)


@router.get("/programmes/{programme_id}", summary="Lessons learnt across a whole programme")
async def programme_report(
    programme_id: str, pool: Pool, principal: CurrentPrincipal, format: Format = "json"
) -> Response:
    principal.check_programme(programme_id)
    async with pool.connection() as conn:
        prog = await _rows(conn, "SELECT name FROM programmes WHERE id = %s", (programme_id,))
        actions = await _rows(
            conn,
            "SELECT a.id, a.owner, a.what, a.due_at, a.meeting_id, a.cycle_id, a.status"
            " FROM action_items a JOIN cycles c ON c.id = a.cycle_id"
            " WHERE c.programme_id = %s AND a.status = 'open' ORDER BY a.due_at, a.id",
            (programme_id,),
        )
        report = await build_report(
            conn,
            programme_id=programme_id,
            principal=principal,
            action_items=actions,
            title=f"Lessons learnt — {prog[0]['name']}" if prog else None,
        )
    if not report["themes"] and not prog:
        raise Problem(404, f"no programme {programme_id!r} with mined notes")
    return _respond(report, format)
