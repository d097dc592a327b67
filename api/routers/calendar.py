"""GET /v1/cycles/{id}/calendar.ics: a cycle's meetings as a calendar people subscribe to.

Readable by whoever may read the cycle (the same check as ``GET /v1/cycles/{id}``).
Authentication is the API's Bearer key, or, because calendar apps cannot send
headers, a per-cycle feed token from ``POST /v1/cycles/{id}/calendar-token``:
``<key id>.<hex hmac_sha256(programme secret, "calendar:<cycle>:<key id>")>``.
The token is never the key itself (a URL ends up in proxy logs), it reads one
cycle only, and it is bound to the key that asked for it: revoking or expiring
that key, or taking the programme out of its grant, invalidates the token,
checked on every fetch (no cache). The secret is the programme's existing
webhook secret (``peerlearn/keys.py``), so rotating it also rotates the feeds.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from psycopg.rows import dict_row
from pydantic import BaseModel

from api import cycle_ops
from api.auth import CurrentPrincipal
from api.deps import OptionalTemporal, Pool, SettingsDep
from api.problems import Problem
from peerlearn import keys, mail
from peerlearn.access import Principal, Role

router = APIRouter(prefix="/v1/cycles", tags=["cycles"])

ICS_MEDIA_TYPE = "text/calendar; charset=utf-8"


class CalendarToken(BaseModel):
    """A subscription URL for calendar apps (relative to the API's base URL)."""

    url: str
    token: str


def _mac(secret: str, cycle_id: str, key_id: str) -> str:
    msg = f"calendar:{cycle_id}:{key_id}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()


def _bad_token() -> Problem:
    return Problem(
        401,
        "invalid, revoked or expired calendar token",
        headers={"WWW-Authenticate": 'Bearer realm="peerlearn", error="invalid_token"'},
    )


async def _token_principal(pool: Any, cycle_id: str, programme_id: str, token: str) -> Principal:
    """The principal of the live key a feed token was made for, or 401."""
    key_id, sep, mac = token.partition(".")
    if not sep or not key_id or not mac:
        raise _bad_token()
    async with pool.connection() as conn:
        secret = await keys.programme_secret_async(conn, programme_id)
        if not hmac.compare_digest(mac, _mac(secret, cycle_id, key_id)):
            raise _bad_token()
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT id, role, programmes, organisation, expires_at FROM api_keys"
                " WHERE id = %s AND revoked_at IS NULL"
                " AND (expires_at IS NULL OR expires_at > now())",
                (key_id,),
            )
            r = await cur.fetchone()
    if r is None:
        raise _bad_token()
    return Principal(
        key_id=r["id"],
        role=Role(r["role"]),
        programmes=frozenset(r["programmes"] or ()),
        organisation=r["organisation"],
        expires_at=r["expires_at"],
    )


@router.post("/{cycle_id}/calendar-token", response_model=CalendarToken)
async def calendar_token(
    cycle_id: str, pool: Pool, principal: CurrentPrincipal, temporal: OptionalTemporal
) -> CalendarToken:
    """A feed URL for this cycle that works without a header (same access as
    reading the cycle); it stops working when the calling key is revoked."""
    row = await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    async with pool.connection() as conn:
        secret = await keys.programme_secret_async(conn, row["programme_id"])
    token = f"{principal.key_id}.{_mac(secret, cycle_id, principal.key_id)}"
    return CalendarToken(url=f"/v1/cycles/{cycle_id}/calendar.ics?token={token}", token=token)


@router.get(
    "/{cycle_id}/calendar.ics",
    response_class=Response,
    responses={
        200: {"content": {"text/calendar": {}}, "description": "RFC 5545 calendar"},
        404: {"description": "Unknown cycle"},
    },
)
async def cycle_calendar(
    cycle_id: str,
    pool: Pool,
    settings: SettingsDep,
    request: Request,
    temporal: OptionalTemporal,
    token: str | None = Query(default=None, max_length=200),
) -> Response:
    """Every meeting of the cycle (one stable UID each; SEQUENCE counts its moves,
    host swaps and cancellation; cancelled meetings stay, marked CANCELLED)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        # only the auth middleware's token pass-through gets here without one
        if not token:
            raise _bad_token()
        row = await cycle_ops.cycle_row(pool, cycle_id)
        if row is None:
            raise _bad_token()  # a token never names an unknown cycle
        principal = await _token_principal(pool, cycle_id, row["programme_id"], token)
    await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
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
