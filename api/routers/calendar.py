"""GET /v1/cycles/{id}/calendar.ics: a cycle's meetings as a calendar people subscribe to.

Readable by whoever may read the cycle (the same check as ``GET /v1/cycles/{id}``).
Authentication is the API's Bearer key: the API has no per-URL tokens, and a
key in a query string would end up in proxy logs, so calendar clients that
cannot send a header fetch it through a proxy or a scheduled download.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api import cycle_ops
from api.auth import CurrentPrincipal
from api.deps import Pool, SettingsDep
from peerlearn import mail

router = APIRouter(prefix="/v1/cycles", tags=["cycles"])

ICS_MEDIA_TYPE = "text/calendar; charset=utf-8"


@router.get(
    "/{cycle_id}/calendar.ics",
    response_class=Response,
    responses={
        200: {"content": {"text/calendar": {}}, "description": "RFC 5545 calendar"},
        404: {"description": "Unknown cycle"},
    },
)
async def cycle_calendar(
    cycle_id: str, pool: Pool, settings: SettingsDep, principal: CurrentPrincipal, request: Request
) -> Response:
    """Every meeting of the cycle (one stable UID each; SEQUENCE counts its moves,
    host swaps and cancellation; cancelled meetings stay, marked CANCELLED)."""
    await cycle_ops.visible_cycle(
        pool, getattr(request.app.state, "temporal", None), cycle_id, principal
    )
    async with pool.connection() as conn:
        ctx = await mail.load_cycle_context(conn, cycle_id)
    if ctx is None:  # the workflow exists but its first event is not projected yet
        body = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//peerlearn//EN\r\nEND:VCALENDAR\r\n"
    else:
        body = mail.calendar_feed(ctx, settings)
    return Response(
        content=body,
        media_type=ICS_MEDIA_TYPE,
        headers={
            "Content-Disposition": f'inline; filename="{cycle_id}.ics"',
            "Cache-Control": "private, max-age=300",
        },
    )
