"""Analyst curation (issue 11 item 6) on a mined multilingual fixture: each
correction is an event on the mining stream, applied at once, within the
caller's grant, and still there after a real re-mine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
from auth_helpers import admin_headers, api_client, key_headers
from mining_support import ingest_fixture, mine_directly, mining_settings
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.mining import MiningActivities
from api.main import create_app
from peerlearn.events import EventType
from peerlearn.mining import miner as miners
from peerlearn.settings import Settings
from workflows.mining import (
    THEME_MINING,
    MiningProgress,
    ThemeMining,
    ThemeMiningInput,
    workflow_id_for_run,
)


@pytest.fixture(scope="module")
def settings(model_dir: Path, database_url: str, temporal_env: WorkflowEnvironment) -> Settings:
    target = temporal_env.client.service_client.config.target_host
    return mining_settings(model_dir, database_url, TEMPORAL_ADDRESS=target)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def acts(pool: AsyncConnectionPool, settings: Settings) -> MiningActivities:
    await miners.get_miner_async(settings)
    acts = MiningActivities(pool, settings)
    await ingest_fixture(acts)
    await mine_directly(pool, acts, "curation-run-1")
    return acts


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def client(
    acts: MiningActivities, settings: Settings, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(create_app(settings), admin_headers(database_url)) as c:
        yield c


async def _rows(pool: AsyncConnectionPool, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(sql, params)
        return [dict(r) for r in await cur.fetchall()]


async def _greentech_themes(pool: AsyncConnectionPool) -> list[str]:
    rows = await _rows(
        pool,
        "SELECT s.theme_id FROM statements s JOIN themes t ON t.id = s.theme_id"
        " WHERE s.programme_id = 'greentech' AND t.retired_at IS NULL"
        " GROUP BY 1 ORDER BY count(*) DESC, 1",
    )
    return [r["theme_id"] for r in rows]


async def test_corrections_apply_at_once_and_survive_a_remine(
    client: httpx.AsyncClient,
    acts: MiningActivities,
    pool: AsyncConnectionPool,
    database_url: str,
    settings: Settings,
    temporal_env: WorkflowEnvironment,
) -> None:
    themes = await _greentech_themes(pool)
    assert len(themes) >= 3, themes
    t1, t2, t3 = themes[:3]
    analyst = key_headers(database_url, "analyst", ["greentech"])
    in_t1 = await client.get(f"/v1/themes/{t1}/statements", headers=analyst)
    assert in_t1.status_code == 200, in_t1.text
    ids = [s["id"] for s in in_t1.json()["items"]]
    assert len(ids) >= 4, ids
    moved, to_new, rekinded, hidden = ids[:4]
    old_kind = next(s["kind"] for s in in_t1.json()["items"] if s["id"] == rekinded)
    new_kind = "challenge" if old_kind != "challenge" else "success"
    t3_members = [
        r["id"] for r in await _rows(pool, "SELECT id FROM statements WHERE theme_id = %s", t3)
    ]

    r = await client.put(
        f"/v1/themes/{t1}/title",
        json={"title": "Keeping members engaged", "pinned": True},
        headers=analyst,
    )
    assert r.status_code == 200, r.text
    r = await client.put(
        f"/v1/themes/{t2}/title", json={"title": "Temporary name"}, headers=analyst
    )
    assert r.status_code == 200, r.text
    r = await client.post(f"/v1/themes/{t3}/merge", json={"into": t2}, headers=analyst)
    assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/statements/move", json={"statement_ids": [moved], "theme_id": t2}, headers=analyst
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/v1/statements/move",
        json={"statement_ids": [to_new], "new_theme_title": "Staff turnover"},
        headers=analyst,
    )
    assert r.status_code == 200, r.text
    new_theme = r.json()["theme_id"]
    assert new_theme not in themes
    r = await client.put(
        f"/v1/statements/{quote(rekinded, safe='')}/kind", json={"kind": new_kind}, headers=analyst
    )
    assert r.status_code == 200, r.text
    r = await client.put(
        f"/v1/statements/{quote(hidden, safe='')}/hidden", json={"hidden": True}, headers=analyst
    )
    assert r.status_code == 200, r.text

    async def check(phase: str) -> None:
        detail = (await client.get(f"/v1/themes/{t1}")).json()
        assert detail["title"] == "Keeping members engaged", (phase, detail["title"])
        st = {
            r["id"]: r
            for r in await _rows(
                pool,
                "SELECT id, theme_id, kind, hidden FROM statements WHERE id = ANY(%s)",
                [moved, to_new, rekinded, hidden, *t3_members],
            )
        }
        assert st[moved]["theme_id"] == t2, phase
        assert st[to_new]["theme_id"] == new_theme, phase
        assert st[rekinded]["kind"] == new_kind, phase
        assert st[hidden]["hidden"] and st[hidden]["theme_id"] is None, phase
        assert all(st[m]["theme_id"] != t3 for m in t3_members), phase
        assert not await _rows(pool, "SELECT 1 FROM statements WHERE theme_id = %s", t3), phase
        live = {
            r["id"]: r
            for r in await _rows(
                pool,
                "SELECT id, title, retired_at FROM themes WHERE id = ANY(%s)",
                [t1, t2, t3, new_theme],
            )
        }
        assert live[t3]["retired_at"] is not None, phase
        assert live[new_theme]["retired_at"] is None, phase
        assert live[new_theme]["title"] == "Staff turnover", phase
        assert live[t1]["retired_at"] is None and live[t2]["retired_at"] is None, phase
        seen = (await client.get(f"/v1/themes/{t1}/statements")).json()["items"]
        assert hidden not in {s["id"] for s in seen}, phase
        new_detail = await client.get(f"/v1/themes/{new_theme}")
        assert new_detail.status_code == 200, (phase, new_detail.text)
        assert new_detail.json()["title"] == "Staff turnover", phase

    await check("at once")
    before = await _rows(pool, "SELECT title FROM themes WHERE id = %s", t2)
    assert before[0]["title"] == "Temporary name"

    # a real re-mine: the ThemeMining workflow on a worker with the real miner
    async with Worker(
        temporal_env.client,
        task_queue=settings.task_queue,
        workflows=[ThemeMining],
        activities=acts.all(),
    ):
        run_id = "curation-run-2"
        async with pool.connection() as conn:
            await conn.execute("INSERT INTO mining_runs (id, scope) VALUES (%s, 'all')", (run_id,))
            await conn.commit()
        result = await temporal_env.client.execute_workflow(
            THEME_MINING,
            ThemeMiningInput(run_id=run_id, batch_size=16, parallelism=2),
            id=workflow_id_for_run(run_id),
            task_queue=settings.task_queue,
            result_type=MiningProgress,
        )
        assert result.status == "completed", result
    await check("after re-mine")
    # an unpinned rename is the miner's to replace at the next re-mine
    after = await _rows(pool, "SELECT title FROM themes WHERE id = %s", t2)
    assert after[0]["title"] != "Temporary name"

    events = await _rows(
        pool,
        "SELECT type, payload FROM events WHERE stream_id = 'mining' AND type = ANY(%s)"
        " ORDER BY global_position",
        [
            EventType.THEME_RENAMED.value,
            EventType.THEMES_MERGED_BY_ANALYST.value,
            EventType.STATEMENTS_MOVED.value,
            EventType.STATEMENT_KIND_CORRECTED.value,
            EventType.STATEMENT_HIDDEN.value,
        ],
    )
    assert len(events) == 7
    assert len({e["payload"]["key_id"] for e in events}) == 1
    listed = await client.get("/v1/curation/events", headers=analyst)
    assert listed.status_code == 200 and len(listed.json()["items"]) == 7

    # shown again: back in the theme it left
    r = await client.put(
        f"/v1/statements/{quote(hidden, safe='')}/hidden", json={"hidden": False}, headers=analyst
    )
    assert r.status_code == 200, r.text
    back = await _rows(pool, "SELECT theme_id, hidden FROM statements WHERE id = %s", hidden)
    assert back[0]["hidden"] is False and back[0]["theme_id"] is not None


async def test_grant_and_bad_input(
    client: httpx.AsyncClient, pool: AsyncConnectionPool, database_url: str
) -> None:
    themes = await _greentech_themes(pool)
    tid = themes[0]
    sid = (await _rows(pool, "SELECT id FROM statements WHERE theme_id = %s LIMIT 1", tid))[0]["id"]
    outsider = key_headers(database_url, "analyst", ["nowhere"])
    for method, url, body in (
        ("PUT", f"/v1/themes/{tid}/title", {"title": "x"}),
        ("POST", f"/v1/themes/{tid}/merge", {"into": themes[1]}),
        ("POST", "/v1/statements/move", {"statement_ids": [sid], "theme_id": tid}),
        ("PUT", f"/v1/statements/{quote(sid, safe='')}/kind", {"kind": "lesson"}),
        ("PUT", f"/v1/statements/{quote(sid, safe='')}/hidden", {"hidden": True}),
    ):
        r = await client.request(method, url, json=body, headers=outsider)
        assert r.status_code == 404, (url, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    partner = key_headers(database_url, "partner", ["greentech"], organisation="north-cluster")
    r = await client.put(
        f"/v1/statements/{quote(sid, safe='')}/kind", json={"kind": "lesson"}, headers=partner
    )
    assert r.status_code == 403
    bad: list[tuple[str, str, dict[str, Any]]] = [
        ("PUT", f"/v1/statements/{quote(sid, safe='')}/kind", {"kind": "nonsense"}),
        ("POST", f"/v1/themes/{tid}/merge", {"into": tid}),
        ("POST", "/v1/statements/move", {"statement_ids": [sid]}),
        ("POST", "/v1/statements/move", {"statement_ids": [], "theme_id": tid}),
        ("PUT", f"/v1/themes/{tid}/title", {"title": "   "}),
        ("PUT", f"/v1/themes/{tid}/title", {"title": "ok", "extra": 1}),
    ]
    for method, url, body in bad:
        r = await client.request(method, url, json=body)
        assert r.status_code == 422, (url, body, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.put("/v1/statements/nope%231/kind", json={"kind": "lesson"})
    assert r.status_code == 404
