"""GET /v1/notes/{note_id}/original: download the file a note was uploaded as.

Whoever may read the note may download its original: the same checks as
listing the cycle's notes (the cycle visible to the key, and for partner keys
only their own organisation's notes); a note the key may not read is answered
like an unknown one. The file is always sent as an attachment with ``nosniff``
and a sandboxing CSP, so an uploaded HTML page or e-mail never runs in the
API's origin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Response
from psycopg.rows import dict_row

from api import cycle_ops
from api.auth import CurrentPrincipal
from api.deps import OptionalTemporal, Pool
from api.problems import Problem

router = APIRouter(prefix="/v1/notes", tags=["notes"])


def _disposition(filename: str) -> str:
    ascii_name = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get(
    "/{note_id}/original",
    response_class=Response,
    responses={
        200: {
            "description": "The uploaded file, byte for byte",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        404: {"description": "Unknown note, or the note was not uploaded as a file"},
    },
)
async def download_original(
    note_id: str, temporal: OptionalTemporal, pool: Pool, principal: CurrentPrincipal
) -> Response:
    """The original document of a note submitted as a file upload."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT cycle_id, author_organisation FROM notes WHERE id = %s", (note_id,)
        )
        note = await cur.fetchone()
    if note is None or not principal.may_read_note_of(note["author_organisation"]):
        raise Problem(404, f"note {note_id!r} not found")
    await cycle_ops.visible_cycle(pool, temporal, note["cycle_id"], principal)
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT o.filename, b.sha256, b.media_type, b.data FROM note_originals o"
            " JOIN document_blobs b USING (sha256) WHERE o.note_id = %s",
            (note_id,),
        )
        row: dict[str, Any] | None = await cur.fetchone()
    if row is None:
        raise Problem(404, f"note {note_id!r} was not uploaded as a file")
    return Response(
        content=bytes(row["data"]),
        media_type=row["media_type"],
        headers={
            "Content-Disposition": _disposition(row["filename"]),
            "ETag": f'"{row["sha256"]}"',
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "private, max-age=0",
        },
    )
