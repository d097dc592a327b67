"""Real API keys for tests (there is no way to switch authentication off).

Usage in an API test::

    from auth_helpers import admin_headers, key_headers  # tests/ is on sys.path

    headers = admin_headers(database_url)              # one admin key per database
    r = await client.get("/v1/cycles", headers=headers)
    mgr = key_headers(database_url, "manager", programmes=["p1"])
    partner = key_headers(database_url, "partner", programmes=["p1"], organisation="org-a")

``api_client`` runs the app's lifespan (pool, Temporal client) around an
``httpx.AsyncClient`` on the ASGI transport, optionally with default headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import httpx

from peerlearn.keys import create_key

_admin: dict[str, str] = {}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def key_headers(
    conninfo: str,
    role: str,
    programmes: Iterable[str] = (),
    organisation: str | None = None,
    expires_in_days: float | None = None,
    person: str | None = None,
) -> dict[str, str]:
    """Headers carrying a freshly created key with this role and grant."""
    _, token = create_key(
        conninfo,
        role,
        programmes,
        organisation,
        expires_in_days,
        name=f"test-{role}",
        person=person,
    )
    return bearer(token)


def admin_headers(conninfo: str) -> dict[str, str]:
    """Headers with an admin key for this database (created once, then reused)."""
    if conninfo not in _admin:
        _, token = create_key(conninfo, "admin", name="test-admin")
        _admin[conninfo] = token
    return bearer(_admin[conninfo])


@asynccontextmanager
async def api_client(
    app: object, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """An AsyncClient talking to ``app`` in-process, with its lifespan running."""
    lifespan = app.router.lifespan_context  # type: ignore[attr-defined]
    async with lifespan(app):
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1", headers=headers or {}
        ) as client:
            yield client
