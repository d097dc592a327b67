"""Exports: themes and practices as CSV or JSON, with the analyst filters.

CSV cells come from note text, so a cell a spreadsheet would run as a formula
is neutralised (:func:`csv_cell`)."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response

from api.analyst import FiltersDep
from api.auth import CurrentPrincipal
from api.deps import Pool
from peerlearn.readside.themes import list_themes, theme_practices

router = APIRouter(prefix="/v1/exports", tags=["analyst"])

EXPORT_LIMIT = 100_000


# A cell starting with one of these is a formula to Excel, LibreOffice and
# Google Sheets (``=HYPERLINK(...)``, ``@SUM(...)``, ``+cmd|...``); tab and CR
# start one after the spreadsheet trims them. OWASP "CSV injection".
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(v: object) -> object:
    """One CSV cell: JSON for lists and dicts, empty for None, and text that a
    spreadsheet would run as a formula prefixed with ``'`` (shown, not run).
    Numbers stay numbers (a negative score is not a formula)."""
    if v is None:
        return ""
    if isinstance(v, dict | list):
        v = json.dumps(v, ensure_ascii=False, default=str)
    if isinstance(v, str) and v.startswith(FORMULA_START):
        return "'" + v
    return v


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(columns)
    for r in rows:
        w.writerow([csv_cell(r.get(c)) for c in columns])
    return buf.getvalue()


def _send(rows: list[dict[str, Any]], columns: list[str], name: str, fmt: str) -> Response:
    if fmt == "csv":
        return Response(
            _csv(rows, columns),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}.csv"',
                "X-Content-Type-Options": "nosniff",
            },
        )
    return Response(
        json.dumps(jsonable_encoder(rows), ensure_ascii=False),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="{name}.json"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/themes.{fmt}", summary="All themes (filters as GET /v1/themes)")
async def export_themes(
    fmt: Literal["csv", "json"], pool: Pool, principal: CurrentPrincipal, filters: FiltersDep
) -> Response:
    async with pool.connection() as conn:
        rows, _ = await list_themes(conn, principal, filters, limit=EXPORT_LIMIT)
    for r in rows:
        for lang, n in (r.get("languages") or {}).items():
            r[f"n_{lang}"] = n
    langs = sorted({k for r in rows for k in (r.get("languages") or {})})
    columns = [
        "id",
        "label",
        "title",
        "titles",
        "keyphrases",
        "size",
        "cycles",
        "organisations",
        "programmes",
        "first_seen",
        "last_seen",
        "languages",
    ] + [f"n_{x}" for x in langs]
    return _send(rows, columns, "themes", fmt)


@router.get("/practices.{fmt}", summary="All practices (filters as GET /v1/practices)")
async def export_practices(
    fmt: Literal["csv", "json"], pool: Pool, principal: CurrentPrincipal, filters: FiltersDep
) -> Response:
    async with pool.connection() as conn:
        rows, _ = await theme_practices(conn, principal, filters, limit=EXPORT_LIMIT)
    if fmt == "csv":
        for r in rows:
            r["sources"] = "; ".join(
                f"{s.get('organisation_id')}/{s.get('meeting_id')}/{s.get('date')}"
                for s in r.get("sources") or []
            )
    for r in rows:  # one row per idea: its wordings per language as JSON cells
        r["glosses"] = {
            lang: w["gloss"]["english_text"]
            for lang, w in (r.get("wordings") or {}).items()
            if w.get("gloss")
        }
        r["wordings"] = {lang: w["text"] for lang, w in (r.get("wordings") or {}).items()}
    columns = [
        "id",
        "statement_id",
        "theme_id",
        "theme_label",
        "kind",
        "audience",
        "text",
        "language",
        "wordings",
        "glosses",
        "support_cycles",
        "support_organisations",
        "score",
        "organisation_id",
        "meeting_id",
        "cycle_id",
        "programme_id",
        "note_id",
        "source_date",
        "sources",
    ]
    return _send(rows, columns, "practices", fmt)
