"""/v1/programmes: register and read programmes (partners, zone, webhook).

A programme is an event stream of its own (``programme:<id>``), so the
projections rebuild covers it like the cycles."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, status
from psycopg.rows import dict_row

from api import auth
from api.auth import CurrentPrincipal, Principal, Role, require
from api.deps import Pool, SettingsDep
from api.problems import Problem
from api.schemas_cycles import Programme, ProgrammeCreate, ProgrammePage, ProgrammeUpdate
from peerlearn import eventstore, outbound
from peerlearn.access import programme_not_found
from peerlearn.events import EventType
from peerlearn.settings import Settings

router = APIRouter(prefix="/v1/programmes", tags=["programmes"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown programme"},
    409: {"description": "Programme id already used"},
    422: {"description": "Invalid field (e.g. unknown time zone, a webhook to a private address)"},
}


async def check_webhook(url: object, settings: Settings) -> None:
    """422 for a webhook URL the worker must not post to (see peerlearn/outbound.py)."""
    if url is None:
        return
    await outbound.check_webhook_url(
        str(url),
        allow_private=settings.webhook_allow_private,
        allow_http=settings.webhook_allow_http,
        require_resolution=False,
    )


async def programme_row(pool: Pool, programme_id: str) -> dict[str, Any] | None:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM programmes WHERE id = %s", (programme_id,))
        return await cur.fetchone()


@router.post("", status_code=status.HTTP_201_CREATED, response_model=Programme, responses=_ERRORS)
async def create_programme(
    body: ProgrammeCreate,
    pool: Pool,
    settings: SettingsDep,
    principal: Principal = require(Role.manager),
) -> dict[str, Any]:
    """Register a programme with its partners, time zone and optional webhook
    (https to a public address unless the settings allow more)."""
    await check_webhook(body.webhook_url, settings)
    pid = body.id or "prog-" + uuid.uuid4().hex[:10]
    payload = body.model_dump(mode="json")
    payload["id"] = pid
    try:
        async with pool.connection() as conn, conn.transaction():
            await eventstore.append(
                conn,
                stream_id=eventstore.programme_stream(pid),
                type="ProgrammeCreated",
                payload=payload,
                idempotency_key=f"programme:{pid}:created:{uuid.uuid4().hex}",
                occurred_at=datetime.now(UTC),
                expect_new_stream=True,
            )
            await auth.grant_new_programme(conn, principal, pid)
    except eventstore.StreamExists as exc:
        raise Problem(409, f"programme {pid!r} already exists") from exc
    row = await programme_row(pool, pid)
    assert row is not None
    return row


@router.get("", response_model=ProgrammePage)
async def list_programmes(pool: Pool, principal: CurrentPrincipal) -> dict[str, Any]:
    """Programmes this key may see."""
    allowed = principal.programme_filter()
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        if allowed is None:
            await cur.execute("SELECT * FROM programmes ORDER BY id")
        else:
            await cur.execute("SELECT * FROM programmes WHERE id = ANY(%s) ORDER BY id", (allowed,))
        return {"items": await cur.fetchall()}


@router.get("/{programme_id}", response_model=Programme, responses=_ERRORS)
async def get_programme(
    programme_id: str, pool: Pool, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.check_programme(programme_id)
    row = await programme_row(pool, programme_id)
    if row is None:
        raise programme_not_found(programme_id)
    return row


@router.patch("/{programme_id}", response_model=Programme, responses=_ERRORS)
async def update_programme(
    programme_id: str,
    body: ProgrammeUpdate,
    pool: Pool,
    settings: SettingsDep,
    principal: Principal = require(Role.manager),
) -> dict[str, Any]:
    """Edit a programme: contacts and facilitators (who gets the cycles' e-mails),
    partners (added, never removed), name, zone, webhook. Only the fields sent change."""
    principal.check_programme(programme_id)
    row = await programme_row(pool, programme_id)
    if row is None:
        raise programme_not_found(programme_id)
    changes = body.model_dump(mode="json", exclude_unset=True)
    if not changes:
        return row
    await check_webhook(changes.get("webhook_url"), settings)
    if "partners" in changes:
        kept = {p["id"] for p in changes["partners"]}
        dropped = sorted(p["id"] for p in row["partners"] if p["id"] not in kept)
        if dropped:
            raise Problem(
                422, f"partners cannot be removed (cycles refer to them): {', '.join(dropped)}"
            )
    async with pool.connection() as conn, conn.transaction():
        await eventstore.append(
            conn,
            stream_id=eventstore.programme_stream(programme_id),
            type=EventType.PROGRAMME_UPDATED,
            payload={"id": programme_id, **changes},
            idempotency_key=f"programme:{programme_id}:updated:{uuid.uuid4().hex}",
            occurred_at=datetime.now(UTC),
        )
    updated = await programme_row(pool, programme_id)
    assert updated is not None
    return updated
