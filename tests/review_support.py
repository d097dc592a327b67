"""Shared set-up for the issue 13 review-loop API tests (not a test module).

Several test modules drive the real API against the session's PostgreSQL and
Temporal test server, then catch the mail it sends with a real SMTP server;
the client context, a free port for the catcher and the caught messages live
here once so that those modules only say what differs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any, cast

import httpx
from auth_helpers import admin_headers, api_client
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from peerlearn.settings import Settings
from workflows.types import workflow_id_for


@dataclass
class Ctx:
    """An admin API client plus the database it writes to."""

    client: httpx.AsyncClient
    pool: AsyncConnectionPool
    database_url: str


@asynccontextmanager
async def open_ctx(
    temporal_env: WorkflowEnvironment,
    pool: AsyncConnectionPool,
    database_url: str,
    smtp_from: str | None = None,
) -> AsyncIterator[Ctx]:
    """An admin client of a fresh app on the test database and Temporal
    server (no demo data); `smtp_from` only where a test checks the sender."""
    settings = Settings(
        database_url=database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        load_demo=False,
    )
    if smtp_from is not None:
        settings = settings.model_copy(update={"smtp_from": smtp_from})
    async with api_client(create_app(settings), admin_headers(database_url)) as client:
        yield Ctx(client, pool, database_url)


async def caught_messages(pool: AsyncConnectionPool) -> list[EmailMessage]:
    """Every message the catcher stored, oldest first, parsed."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT raw FROM caught_mail ORDER BY id")
        rows = await cur.fetchall()
    return [
        cast(EmailMessage, message_from_bytes(bytes(r["raw"]), policy=default_policy)) for r in rows
    ]


def cycle_started(
    programme_id: str,
    cycle_id: str,
    partners: list[str],
    ends_at: datetime,
    meetings: list[dict[str, Any]],
    **extra: object,
) -> dict[str, Any]:
    """The payload of a CycleStarted event as these tests append it directly
    (a "2031" cycle in Stockholm time, default policies), so a test sets up a
    cycle's read model without running its workflow; `extra` adds fields such
    as `phase` or `imported`."""
    return {
        "programme_id": programme_id,
        "workflow_id": workflow_id_for(cycle_id),
        "title": "2031",
        "time_zone": "Europe/Stockholm",
        "partners": partners,
        "ends_at": ends_at.isoformat(),
        "policies": {},
        "meetings": meetings,
        **extra,
    }
