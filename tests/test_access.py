"""What each role may read, on the real stack (PostgreSQL, Temporal, the cycle worker).

Partners are the learners: in their own programme they read the mined output
(themes, reports), but of the raw notes only their own organisation's. A
cycle or programme outside a key's grant answers 404 exactly like an unknown
id, so neither its existence nor its programme's name leaks.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest_asyncio
from auth_helpers import admin_headers, api_client, key_headers
from cycle_support import cycle_worker
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from peerlearn.settings import Settings

PARTNERS = [
    {"id": "vaxa", "name": "Växa", "country": "SE", "kind": "cluster"},
    {"id": "lodz", "name": "Łódź", "country": "PL", "kind": "agency"},
]


@dataclass
class World:
    client: httpx.AsyncClient
    database_url: str
    mine: str  # programme with vaxa and lodz
    theirs: str  # another programme, secret name
    cycle: str  # cycle of ``mine`` with one note by each partner
    hidden_cycle: str  # cycle of ``theirs``


async def _wait_for(pred: Any, within: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await pred():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def _programme(client: httpx.AsyncClient, pid: str) -> None:
    r = await client.post(
        "/v1/programmes",
        json={"id": pid, "name": f"Name of {pid}", "time_zone": "UTC", "partners": PARTNERS},
    )
    assert r.status_code == 201, r.text


async def _cycle(client: httpx.AsyncClient, pool: AsyncConnectionPool, pid: str) -> str:
    cid = "acc-" + uuid.uuid4().hex[:6]
    start = datetime.now(UTC) + timedelta(days=3)
    r = await client.post(
        "/v1/cycles",
        json={
            "cycle_id": cid,
            "programme_id": pid,
            "title": "Access",
            "meetings": [
                {"meeting_id": "kickoff", "kind": "kickoff", "starts_at": start.isoformat()}
            ],
        },
    )
    assert r.status_code == 201, r.text

    async def projected() -> bool:
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT 1 FROM cycles WHERE id = %s", (cid,))
            return await cur.fetchone() is not None

    await _wait_for(projected)
    return cid


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def world(
    temporal_env: WorkflowEnvironment, pool: AsyncConnectionPool, database_url: str
) -> AsyncIterator[World]:
    tq = "access-" + uuid.uuid4().hex[:6]
    settings = Settings(
        database_url=database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        task_queue=tq,
        load_demo=False,
    )
    suffix = uuid.uuid4().hex[:6]
    mine, theirs = f"mine-{suffix}", f"secret-programme-{suffix}"
    async with (
        api_client(create_app(settings), admin_headers(database_url)) as client,
        cycle_worker(temporal_env.client, pool, tq),
    ):
        await _programme(client, mine)
        await _programme(client, theirs)
        cid = await _cycle(client, pool, mine)
        hidden = await _cycle(client, pool, theirs)
        r = await client.post(f"/v1/cycles/{cid}/meetings/kickoff/held", json={})
        assert r.status_code == 202, r.text

        async def held() -> bool:
            async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(
                    "SELECT state FROM meetings WHERE cycle_id = %s AND id = 'kickoff'", (cid,)
                )
                row = await cur.fetchone()
                return row is not None and row["state"] == "held"

        await _wait_for(held)
        for org, lang, text in (("vaxa", "sv", "Vår egen anteckning."), ("lodz", "pl", "Nasze.")):
            partner = key_headers(database_url, "partner", [mine], organisation=org)
            r = await client.post(
                f"/v1/cycles/{cid}/meetings/kickoff/notes",
                json={"author_organisation": org, "language": lang, "text": text},
                headers=partner,
            )
            assert r.status_code == 201, r.text

        async def stored() -> bool:
            r = await client.get(f"/v1/cycles/{cid}/notes")
            return len(r.json()["items"]) == 2

        await _wait_for(stored)
        yield World(client, database_url, mine, theirs, cid, hidden)


async def test_partner_reads_only_its_own_raw_notes(world: World) -> None:
    w = world
    vaxa = key_headers(w.database_url, "partner", [w.mine], organisation="vaxa")
    notes = (await w.client.get(f"/v1/cycles/{w.cycle}/notes", headers=vaxa)).json()["items"]
    assert [n["author_organisation"] for n in notes] == ["vaxa"]
    analyst = key_headers(w.database_url, "analyst", [w.mine])
    everyone = (await w.client.get(f"/v1/cycles/{w.cycle}/notes", headers=analyst)).json()
    assert {n["author_organisation"] for n in everyone["items"]} == {"vaxa", "lodz"}


async def test_partner_reads_its_programmes_themes_and_reports(world: World) -> None:
    w = world
    vaxa = key_headers(w.database_url, "partner", [w.mine], organisation="vaxa")
    r = await w.client.get("/v1/themes", params={"programme": w.mine}, headers=vaxa)
    assert r.status_code == 200, r.text
    r = await w.client.get(f"/v1/reports/cycles/{w.cycle}", headers=vaxa)
    assert r.status_code == 200, r.text
    assert r.json()["summary"]["notes"] == 2
    r = await w.client.get(f"/v1/reports/programmes/{w.mine}", headers=vaxa)
    assert r.status_code == 200, r.text


async def test_outside_the_grant_is_an_unknown_id(world: World) -> None:
    w = world
    for key in (
        key_headers(w.database_url, "partner", [w.mine], organisation="vaxa"),
        key_headers(w.database_url, "manager", [w.mine]),
        key_headers(w.database_url, "analyst", [w.mine]),
    ):
        for hidden, ghost in (
            (f"/v1/cycles/{w.hidden_cycle}", "/v1/cycles/no-such-cycle"),
            (f"/v1/cycles/{w.hidden_cycle}/notes", "/v1/cycles/no-such-cycle/notes"),
            (f"/v1/reports/cycles/{w.hidden_cycle}", "/v1/reports/cycles/no-such-cycle"),
            (f"/v1/programmes/{w.theirs}", "/v1/programmes/no-such-programme"),
            (f"/v1/reports/programmes/{w.theirs}", "/v1/reports/programmes/no-such-programme"),
        ):
            a, b = await w.client.get(hidden, headers=key), await w.client.get(ghost, headers=key)
            assert a.status_code == b.status_code == 404, (hidden, a.text, b.text)
            if w.theirs not in hidden:  # a cycle never names its programme
                assert w.theirs not in a.text, a.text
            # the same answer, up to the id the caller sent
            same = a.json()["detail"].replace(w.hidden_cycle, "X").replace(w.theirs, "X")
            assert same == b.json()["detail"].replace("no-such-cycle", "X").replace(
                "no-such-programme", "X"
            )
        r = await w.client.get("/v1/themes", params={"programme": w.theirs}, headers=key)
        assert r.status_code == 404


async def test_tampered_cycle_cursors_are_400(world: World) -> None:
    def b64(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    for cursor in ("AA", "!!!", b64("{}"), b64("[1]"), b64('["\\u0000"]'), b64('["\\ud800"]')):
        r = await world.client.get("/v1/cycles", params={"cursor": cursor})
        assert r.status_code == 400, (cursor, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    page = (await world.client.get("/v1/cycles", params={"limit": 1})).json()
    nxt = await world.client.get("/v1/cycles", params={"limit": 1, "cursor": page["next_cursor"]})
    assert nxt.status_code == 200 and nxt.json()["items"][0]["id"] > page["items"][0]["id"]
