"""Correct, withdraw and visibility against a live cycle workflow (Temporal
dev server, the real cycle worker): the note window is the workflow's own,
notes are submitted through its update, visibility is set on submit (JSON
field, form field), and a correction or withdrawal goes to the same stream."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
from auth_helpers import admin_headers, api_client, key_headers
from cycle_support import create_programme, cycle_input, cycle_worker
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from peerlearn.settings import Settings
from workflows.cycle import PeerLearningCycle
from workflows.types import MarkHeldInput, MeetingPlan, workflow_id_for


class Ctx:
    client: httpx.AsyncClient
    pool: AsyncConnectionPool
    database_url: str
    programme_id: str
    cycle_id: str


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ctx(
    temporal_env: WorkflowEnvironment, pool: AsyncConnectionPool, database_url: str
) -> AsyncIterator[Ctx]:
    c = Ctx()
    c.pool, c.database_url = pool, database_url
    tq = "privlive-" + uuid.uuid4().hex[:6]
    settings = Settings(
        database_url=database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        task_queue=tq,
        load_demo=False,
    )
    async with cycle_worker(temporal_env.client, pool, tq):
        c.programme_id = await create_programme(pool)
        c.cycle_id = "pl-" + uuid.uuid4().hex[:6]
        t0 = datetime.now(UTC)
        plan = [
            MeetingPlan(meeting_id="kickoff", kind="kickoff", starts_at=t0 + timedelta(days=3)),
            MeetingPlan(meeting_id="later", kind="webinar", starts_at=t0 + timedelta(days=20)),
        ]
        handle = await temporal_env.client.start_workflow(
            PeerLearningCycle.run, cycle_input(c.cycle_id, c.programme_id, plan),
            id=workflow_id_for(c.cycle_id), task_queue=tq,
        )  # fmt: skip
        await handle.signal(PeerLearningCycle.mark_held, MarkHeldInput(meeting_id="kickoff"))
        for _ in range(200):
            if (await _row(c, "SELECT state FROM meetings WHERE cycle_id = %s AND id = 'kickoff'",
                           c.cycle_id) or {}).get("state") == "held":  # fmt: skip
                break
            await asyncio.sleep(0.1)
        async with api_client(create_app(settings), admin_headers(database_url)) as client:
            c.client = client
            yield c


async def _row(c: Ctx, q: Any, *params: Any) -> dict[str, Any] | None:
    async with c.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q, params)
        return await cur.fetchone()


async def test_visibility_on_submit_then_correct_and_withdraw(ctx: Ctx) -> None:
    c = ctx
    url = f"/v1/cycles/{c.cycle_id}/meetings/kickoff/notes"
    p1 = key_headers(c.database_url, "partner", [c.programme_id], organisation="p1")
    r = await c.client.post(
        url, headers=p1,
        json={"author_organisation": "p1", "language": "en", "visibility": "facilitators",
              "text": "Candid: our board nearly cancelled the membership scheme."},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    nid = r.json()["note_id"]
    assert (await _row(c, "SELECT visibility FROM notes WHERE id = %s", nid)) == {
        "visibility": "facilitators"
    }
    r = await c.client.post(
        url, headers=p1, files={"file": ("n.md", b"# Visit\n- Matchmaking works", "text/markdown")},
        data={"author_organisation": "p1", "language": "en", "visibility": "public"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    up = r.json()["note_id"]
    assert (await _row(c, "SELECT visibility FROM notes WHERE id = %s", up))["visibility"] == (  # type: ignore[index]
        "public"
    )
    r = await c.client.post(
        url, headers=p1, json={"author_organisation": "p1", "language": "en", "text": "x",
                               "visibility": "everyone"},
    )  # fmt: skip
    assert r.status_code == 422
    # the workflow's window is open: correct by upload, then withdraw
    r = await c.client.put(
        f"/v1/notes/{up}", headers=p1,
        files={"file": ("n2.md", b"# Visit\n- Matchmaking works twice a year", "text/markdown")},
    )  # fmt: skip
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    row = await _row(c, "SELECT text, version FROM notes WHERE id = %s", up)
    assert row is not None and "twice a year" in row["text"]
    orig = await _row(c, "SELECT filename FROM note_originals WHERE note_id = %s", up)
    assert orig == {"filename": "n2.md"}
    r = await c.client.delete(f"/v1/notes/{nid}", headers=p1)
    assert r.status_code == 204
    assert await _row(c, "SELECT 1 AS x FROM notes WHERE id = %s", nid) is None
    n = await _row(c, "SELECT note_count FROM meetings WHERE cycle_id = %s AND id = 'kickoff'",
                   c.cycle_id)  # fmt: skip
    assert n == {"note_count": 1}
