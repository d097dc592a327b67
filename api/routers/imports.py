"""POST /v1/imports (manager/admin): bring in the notes of past cycles, then mine.

The body is the file itself (``text/csv`` or ``application/x-ndjson`` /
``application/jsonl``) or a ``multipart/form-data`` upload with a ``file``
field. :mod:`peerlearn.importer` validates every line before anything is
written (a 422 lists every bad line with its number) and writes the whole
import in one transaction; importing the same file again writes nothing and
answers 200 with ``changed: false``. When something was written a ThemeMining
run per programme re-mines it; ``GET /v1/imports/{id}`` follows that run.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from api import auth, uploads
from api.auth import CurrentPrincipal, Principal, Role, require
from api.deps import OptionalTemporal, Pool, SettingsDep
from api.limits import check_note_text
from api.mining import start_mining
from api.problems import Problem
from peerlearn import eventstore, importer
from peerlearn.settings import Settings

router = APIRouter(prefix="/v1/imports", tags=["imports"])

_FILE_TYPES = ("text/csv", "application/x-ndjson", "application/jsonl", "application/x-jsonlines")
_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-ndjson": {
                "schema": {"type": "string"},
                "example": (
                    '{"programme_id": "baltic", "programme_name": "Baltic clusters",'
                    ' "cycle_id": "baltic-2023", "cycle_title": "Resilience",'
                    ' "meeting_id": "visit-1", "meeting_kind": "site_visit",'
                    ' "meeting_date": "2023-05-10", "host": "vaxa",'
                    ' "author_organisation": "lodz", "language": "en",'
                    ' "text": "Matchmaking works when researchers come to the firms."}'
                ),
            },
            "text/csv": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


def text_check(settings: Settings) -> importer.TextCheck:
    """The API's note-text validation as the importer's check (reason or None)."""

    def check(text: str) -> str | None:
        try:
            check_note_text(text, settings)
        except Problem as exc:
            return exc.detail
        return None

    return check


async def _read(request: Request, settings: Settings) -> tuple[bytes, str | None, str | None]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        upload, data, _ = await uploads.read_file_field(request, settings.max_import_bytes)
        return data, upload.filename, upload.content_type
    if ctype in _FILE_TYPES or ctype == "application/json":
        return await request.body(), None, ctype
    raise Problem(
        415,
        f"unsupported content type {ctype!r}; send CSV (text/csv), JSONL"
        " (application/x-ndjson) or multipart/form-data with a file",
    )


async def _check_grants(pool: AsyncConnectionPool, principal: Principal, ids: list[str]) -> None:
    """Existing programmes must be in the key's grant; new ones it creates."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT id FROM programmes WHERE id = ANY(%s)", (ids,))
        for r in await cur.fetchall():
            principal.check_programme(r["id"])


def _invalid(exc: importer.ImportInvalid) -> Problem:
    return Problem(
        422,
        str(exc),
        errors=[{"line": e.line, "reason": e.reason} for e in exc.errors],
    )


async def run_import(
    pool: AsyncConnectionPool,
    client: Client | None,
    settings: Settings,
    data: bytes,
    *,
    principal: Principal,
    filename: str | None = None,
    content_type: str | None = None,
    mine: bool = True,
) -> dict[str, Any]:
    """Parse, authorise, write in one transaction, then start mining when
    something changed (and ``mine``). Shared by this router and ``peerlearn import``."""
    try:
        parsed = await asyncio.to_thread(
            importer.parse,
            data,
            check_text=text_check(settings),
            filename=filename,
            content_type=content_type,
        )
    except importer.ImportInvalid as exc:
        raise _invalid(exc) from exc
    await _check_grants(pool, principal, parsed.programme_ids)

    async def grant(conn: eventstore.Conn, programme_id: str) -> None:
        await auth.grant_new_programme(conn, principal, programme_id)

    try:
        async with pool.connection() as conn, conn.transaction():
            result = await importer.write(
                conn, parsed, submitted_by=principal.key_id, on_programme_created=grant
            )
    except importer.ImportInvalid as exc:
        raise _invalid(exc) from exc
    except eventstore.StreamExists as exc:
        raise Problem(
            409, f"a programme of this file was created meanwhile ({exc}); retry"
        ) from exc
    runs: list[str] = []
    if result.changed and mine:
        for pid in result.programme_ids:
            run_id = await start_mining(pool, client, settings, pid, trigger="import")
            if run_id is not None:
                runs.append(run_id)
        async with pool.connection() as conn, conn.transaction():
            await importer.set_mining_run(
                conn, result.import_id, runs[0] if runs else None, "mining" if runs else "written"
            )
    return {**result.as_dict(), "mining_runs": runs}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Import the notes of past cycles (JSONL or CSV; manager role)",
    openapi_extra=_BODY_DOC,
    responses={
        200: {"description": "The same content was imported before: nothing changed"},
        413: {"description": "The file is larger than max_import_bytes"},
        415: {"description": "Neither CSV, JSONL nor a multipart file"},
        422: {"description": "Bad lines: `errors` lists each with its line number and reason"},
    },
)
async def create_import(
    request: Request,
    temporal: OptionalTemporal,
    response: Response,
    pool: Pool,
    settings: SettingsDep,
    mine: Annotated[
        bool, Query(description="Start a ThemeMining run per programme when notes were added")
    ] = True,
    principal: Principal = require(Role.manager),
) -> dict[str, Any]:
    data, filename, ctype = await _read(request, settings)
    if len(data) > settings.max_import_bytes:
        raise Problem(413, f"the file is larger than {settings.max_import_bytes} bytes")
    out = await run_import(
        pool,
        temporal,
        settings,
        data,
        principal=principal,
        filename=filename,
        content_type=ctype,
        mine=mine,
    )
    if not out["changed"]:
        response.status_code = status.HTTP_200_OK
    return out


_WITH_RUN = (
    "SELECT i.*, r.status AS mining_status, r.stage AS mining_stage,"
    " r.done AS mining_done, r.total AS mining_total FROM imports i"
    " LEFT JOIN mining_runs r ON r.id = i.mining_run_id"
)


@router.get("", summary="Recent imports this key may see, newest first")
async def list_imports(
    pool: Pool,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    visible = principal.programme_filter()
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            _WITH_RUN + " WHERE %(v)s::text[] IS NULL"
            " OR NOT EXISTS (SELECT 1 FROM jsonb_array_elements_text(i.programme_ids) p"
            "  WHERE NOT (p = ANY(%(v)s)))"
            " ORDER BY i.created_at DESC, i.id LIMIT %(limit)s",
            {"v": visible, "limit": limit},
        )
        return {"items": await cur.fetchall()}


@router.get("/{import_id}", summary="An import and the progress of its mining run")
async def get_import(import_id: str, pool: Pool, principal: CurrentPrincipal) -> dict[str, Any]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_WITH_RUN + " WHERE i.id = %s", (import_id,))
        row = await cur.fetchone()
    if row is None or not all(principal.can_see(p) for p in row["programme_ids"]):
        raise Problem(404, f"import {import_id!r} not found")
    return dict(row)
