"""Issue 13: the host's free-text self-assessment answers are mined like notes.

The note reconciliation (the path that mines every acknowledged note that has
no statements yet) also picks up each latest self-assessment submission: its
free-text answers become statements authored by the host for its visit, so
they reach themes, practices and search; scale and choice answers do not. A
new submission's text replaces the previous one's statements. Real
PostgreSQL, the API app, the real model."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio
from auth_helpers import admin_headers, api_client, key_headers
from mining_support import mining_settings
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.mining import MiningActivities
from api.main import create_app
from peerlearn import eventstore
from peerlearn.events import EventType
from peerlearn.mining import miner as miners
from peerlearn.settings import Settings
from workflows.mining import ReconcileInput
from workflows.types import workflow_id_for

T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
QUESTIONS: list[dict[str, Any]] = [
    {"id": "support", "text": "How do you support SMEs?", "type": "text"},
    {"id": "maturity", "text": "How mature is your internationalisation?", "type": "scale"},
    {"id": "gaps", "text": "What is hardest for you?", "type": "text"},
]


@dataclass
class Ctx:
    client: httpx.AsyncClient
    pool: AsyncConnectionPool
    database_url: str
    acts: MiningActivities


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ctx(
    temporal_env: WorkflowEnvironment,
    pool: AsyncConnectionPool,
    database_url: str,
    model_dir: Path,
) -> AsyncIterator[Ctx]:
    settings = Settings(
        database_url=database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        load_demo=False,
    )
    msettings = mining_settings(model_dir, database_url)
    await miners.get_miner_async(msettings)
    acts = MiningActivities(pool, msettings)
    async with api_client(create_app(settings), admin_headers(database_url)) as client:
        yield Ctx(client, pool, database_url, acts)


async def _setup(c: Ctx) -> tuple[str, str]:
    pid = "p-" + uuid.uuid4().hex[:8]
    body = {
        "id": pid, "name": "Green peers", "time_zone": "Europe/Stockholm",
        "self_assessment_questions": QUESTIONS,
        "partners": [{"id": "vaxa", "name": "Växa", "country": "SE"},
                     {"id": "lodz", "name": "Łódź", "country": "PL"}],
    }  # fmt: skip
    r = await c.client.post("/v1/programmes", json=body)
    assert r.status_code == 201, r.text
    cid = "c-" + uuid.uuid4().hex[:8]
    start = T0 + timedelta(days=20)
    await eventstore.append_event(
        c.pool, stream_id=cid, type=EventType.CYCLE_STARTED,
        payload={
            "programme_id": pid, "workflow_id": workflow_id_for(cid), "title": "2031",
            "time_zone": "Europe/Stockholm", "partners": ["vaxa", "lodz"],
            "ends_at": (T0 + timedelta(days=100)).isoformat(), "policies": {},
            "meetings": [{
                "meeting_id": "visit-1", "kind": "site_visit", "title": "visit-1",
                "host": "vaxa", "format": "on_site", "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=6)).isoformat(),
                "topics": [], "target_groups": [], "participants": [],
            }],
            "phase": "kickoff",
        },
        idempotency_key=f"{cid}:1", occurred_at=datetime.now(UTC),
    )  # fmt: skip
    return pid, cid


async def _statements(c: Ctx, cid: str) -> list[dict[str, Any]]:
    async with c.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT note_id, organisation_id, meeting_id, programme_id, text FROM statements"
            " WHERE cycle_id = %s ORDER BY note_id, position",
            (cid,),
        )
        return list(await cur.fetchall())


async def test_free_text_answers_are_mined_and_replaced(ctx: Ctx) -> None:
    pid, cid = await _setup(ctx)
    url = f"/v1/cycles/{cid}/meetings/visit-1/self-assessment"
    host = key_headers(ctx.database_url, "partner", [pid], organisation="vaxa")
    answers = [
        {"question_id": "support", "value": "Vi driver ett mentorprogram för små företag."},
        {"question_id": "maturity", "value": 4},
        {"question_id": "gaps", "value": "Det är svårt att hitta finansiering för solpaneler."},
    ]
    r = await ctx.client.put(url, json={"language": "sv", "answers": answers}, headers=host)
    assert r.status_code == 200, r.text
    env = ActivityEnvironment()
    reconcile = ReconcileInput(pid, min_age_s=0)

    out = await env.run(ctx.acts.mining_reconcile, reconcile)
    assert out.notes == 1 and out.statements >= 2 and out.rejected == 0
    rows = await _statements(ctx, cid)
    first_id = rows[0]["note_id"]
    assert first_id.startswith(f"sa:{cid}:visit-1:")
    assert {(r["organisation_id"], r["meeting_id"], r["programme_id"]) for r in rows} == {
        ("vaxa", "visit-1", pid)
    }
    text = " ".join(r["text"] for r in rows)
    assert "mentorprogram" in text and "finansiering" in text
    assert "How do you support" not in text  # the answers, not the questions
    # a ThemesUpdated records it as mined: the next pass finds nothing
    assert (await env.run(ctx.acts.mining_reconcile, reconcile)).notes == 0

    # a new submission: the old statements leave, the new text is mined
    answers[2] = {"question_id": "gaps", "value": "Vi saknar engelsktalande rådgivare."}
    r = await ctx.client.put(url, json={"language": "sv", "answers": answers}, headers=host)
    assert r.status_code == 200
    assert all(r["note_id"] != first_id for r in await _statements(ctx, cid))
    assert (await env.run(ctx.acts.mining_reconcile, reconcile)).notes == 1
    rows = await _statements(ctx, cid)
    assert len({r["note_id"] for r in rows}) == 1 and rows[0]["note_id"] != first_id
    text = " ".join(r["text"] for r in rows)
    assert "rådgivare" in text and "finansiering" not in text
