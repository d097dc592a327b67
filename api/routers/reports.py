"""Wrap-up reports: GET /v1/reports/cycles/{id} and /v1/reports/programmes/{id}.

``format=json`` (default), ``markdown`` or ``html`` (a printable page). The
report is built live by :mod:`peerlearn.readside.report` (the same model and
renderers the cycle's wrap-up step stores), so it is current even before the
cycle's wrap-up; the action items are the open ones of the ``action_items``
projection.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from psycopg.rows import dict_row

from api.auth import CurrentPrincipal
from api.deps import Pool
from peerlearn.access import programme_not_found
from peerlearn.readside.report import (
    HTML_CSP,
    Report,
    build_report,
    render_html,
    render_markdown,
)

router = APIRouter(prefix="/v1/reports", tags=["reports"])

Format = Annotated[Literal["json", "markdown", "html"], Query(description="json, markdown or html")]
Sources = Annotated[
    Literal["named", "anonymous"],
    Query(
        description="named (default) or anonymous: each organisation described by its role"
        ' and country ("a frontrunner partner in SE (partner A)") instead of named'
    ),
]


# Browsers must not guess another type (a Markdown report sniffed as HTML would
# run what a note smuggled in); the HTML page runs nothing (peerlearn's CSP).
_NOSNIFF = {"X-Content-Type-Options": "nosniff"}


def _respond(report: Report, fmt: str) -> Response:
    if fmt == "markdown":
        return PlainTextResponse(
            render_markdown(report), media_type="text/markdown; charset=utf-8", headers=_NOSNIFF
        )
    if fmt == "html":
        return HTMLResponse(
            render_html(report),
            headers={
                **_NOSNIFF,
                "Content-Security-Policy": HTML_CSP,
                "Referrer-Policy": "no-referrer",
            },
        )
    return JSONResponse(report.to_json(), headers=_NOSNIFF)


@router.get("/cycles/{cycle_id}", summary="Wrap-up report of one cycle")
async def cycle_report(
    cycle_id: str,
    pool: Pool,
    principal: CurrentPrincipal,
    format: Format = "json",
    sources: Sources = "named",
) -> Response:
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT title FROM cycles WHERE id = %s", (cycle_id,)
        )
        row = await cur.fetchone()
        report = await build_report(
            conn,
            principal,
            cycle_id=cycle_id,
            title=f"Lessons learnt — {row['title']}" if row else None,
            anonymous=sources == "anonymous",
        )
    return _respond(report, format)


@router.get("/programmes/{programme_id}", summary="Lessons learnt across a whole programme")
async def programme_report(
    programme_id: str,
    pool: Pool,
    principal: CurrentPrincipal,
    format: Format = "json",
    sources: Sources = "named",
) -> Response:
    principal.check_programme(programme_id)
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT name FROM programmes WHERE id = %s", (programme_id,)
        )
        prog = await cur.fetchone()
        report = await build_report(
            conn,
            principal,
            programme_id=programme_id,
            title=f"Lessons learnt — {prog['name']}" if prog else None,
            anonymous=sources == "anonymous",
        )
    if not report.themes and prog is None:
        raise programme_not_found(programme_id)
    return _respond(report, format)
