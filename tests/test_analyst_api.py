"""The analyst API on a mined multilingual fixture: themes with per-language
counts, filters and cursor pagination, theme detail, practices, cross-lingual
search, exports, mining runs, the wrap-up report, and the programme grant."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from auth_helpers import admin_headers, api_client, key_headers
from mining_support import ingest_fixture, mine_directly, mining_settings
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from activities.mining import MiningActivities
from api.main import create_app
from peerlearn import miner_service
from peerlearn.settings import Settings


@pytest.fixture(scope="module")
def settings(model_dir: Path, database_url: str, temporal_env: WorkflowEnvironment) -> Settings:
    target = temporal_env.client.service_client.config.target_host
    return mining_settings(model_dir, database_url, TEMPORAL_ADDRESS=target)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def mined(pool: AsyncConnectionPool, settings: Settings) -> dict[str, Any]:
    await miner_service.get_miner_async(settings)
    acts = MiningActivities(pool, settings)
    await ingest_fixture(acts)
    res = await mine_directly(pool, acts, "api-run")
    return {"themes": res.theme_count}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def client(
    mined: dict[str, Any], settings: Settings, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with api_client(app, admin_headers(database_url)) as c:
        yield c


async def test_themes_cross_lingual_with_iso_counts(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/themes")
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items
    assert any({"en", "sv", "pl"} <= set(t["languages"]) for t in items)
    for t in items:
        assert all(len(k) == 2 for k in t["languages"])
        assert sum(t["languages"].values()) == t["size"]
    # sorted by recurrence: distinct cycles never increase down the list
    cycles = [t["cycles"] for t in items]
    assert cycles == sorted(cycles, reverse=True)


async def test_theme_filters_and_cursor_pagination(client: httpx.AsyncClient) -> None:
    full = (await client.get("/v1/themes", params={"sort": "size"})).json()["items"]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"sort": "size", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/themes", params=params)).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [t["id"] for t in full]
    sv = (await client.get("/v1/themes", params={"language": "sv"})).json()["items"]
    assert sv and all(set(t["languages"]) == {"sv"} for t in sv)
    cities = (await client.get("/v1/themes", params={"programme": "cities"})).json()["items"]
    assert cities and all(t["programmes"] == 1 for t in cities)
    recur = (await client.get("/v1/themes", params={"min_cycles": 2})).json()["items"]
    assert all(t["cycles"] >= 2 for t in recur)
    late = (await client.get("/v1/themes", params={"since": "2024-10-01"})).json()["items"]
    assert late and all(t["first_seen"] >= "2024-10-01" for t in late)
    bad = await client.get("/v1/themes", params={"cursor": "nonsense"})
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith("application/problem+json")
    bad = await client.get("/v1/themes", params={"language": "swedish"})
    assert bad.status_code == 422


async def test_theme_detail_has_sources_practices_trend(client: httpx.AsyncClient) -> None:
    items = (await client.get("/v1/themes")).json()["items"]
    tid = next(t["id"] for t in items if {"en", "sv", "pl"} <= set(t["languages"]))
    d = (await client.get(f"/v1/themes/{tid}")).json()
    assert d["label"] and set(d["representatives"]) >= {"en", "sv", "pl"}
    assert d["sources"] and {"note_id", "meeting_id", "cycle_id", "organisation_id", "date"} <= set(
        d["sources"][0]
    )
    assert d["trend"] and all(len(m["month"]) == 7 for m in d["trend"])
    assert d["recurrence"]["languages"] >= 3
    missing = await client.get("/v1/themes/nope")
    assert missing.status_code == 404


async def test_practices_ranked_by_independent_support(client: httpx.AsyncClient) -> None:
    items = (await client.get("/v1/practices", params={"limit": 200})).json()["items"]
    assert items
    supports = [p["support_cycles"] + p["support_organisations"] for p in items]
    assert supports == sorted(supports, reverse=True)
    assert max(p["support_organisations"] for p in items) >= 2
    assert all(p["sources"] for p in items)
    assert {p["kind"] for p in items} <= {"lesson", "recommendation", "best_practice"}
    pl = (await client.get("/v1/practices", params={"language": "pl"})).json()["items"]
    assert pl and all(p["language"] == "pl" for p in pl)


async def test_search_in_polish_finds_swedish_and_english(client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/v1/search", params={"q": "jak utrzymać zaangażowanie członków w czasie kryzysu"}
    )
    assert r.status_code == 200, r.text
    hits = r.json()["items"]
    top = hits[:6]
    assert {"sv", "en"} <= {h["language"] for h in top}, top
    assert any("kris" in h["text"].lower() or "crisis" in h["text"].lower()
               for h in top if h["language"] != "pl")
    assert all(h["theme"] is None or h["theme"]["id"] for h in hits)
    only_sv = (await client.get("/v1/search", params={"q": "kryzys członkowie", "language": "sv"}))
    assert only_sv.json()["items"] and all(h["language"] == "sv" for h in only_sv.json()["items"])


async def test_exports_csv_and_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/exports/themes.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows and "n_sv" in rows[0]
    j = (await client.get("/v1/exports/practices.json")).json()
    assert j and "support_cycles" in j[0]
    c = await client.get("/v1/exports/practices.csv", params={"programme": "cities"})
    assert all(row["programme_id"] == "cities" for row in csv.DictReader(io.StringIO(c.text)))


async def test_wrapup_report_formats(client: httpx.AsyncClient) -> None:
    j = (await client.get("/v1/reports/cycles/gt-2")).json()
    assert j["themes"] and j["themes"][0]["practices"]
    assert j["themes"][0]["practices"][0]["sources"][0]["organisation"]
    audiences = {g["audience"] for g in j["recommendations"]}
    assert audiences == {"future_partnerships", "organisations", "funders"}
    assert j["changes_since_previous"]["previous_cycle_id"] == "gt-1"
    md = (await client.get("/v1/reports/cycles/gt-2", params={"format": "markdown"})).text
    for heading in ("## Recurring themes", "## Recommendations", "For funders",
                    "## Open action items", "## What changed since the previous cycle"):
        assert heading in md
    html = await client.get("/v1/reports/programmes/greentech", params={"format": "html"})
    assert html.status_code == 200 and html.text.startswith("<!doctype html>")
    assert "Recommendations" in html.text and "@media print" in html.text


async def test_grant_filters_everything(
    client: httpx.AsyncClient, database_url: str
) -> None:
    analyst = key_headers(database_url, "analyst", programmes=["cities"])
    themes = (await client.get("/v1/themes", headers=analyst)).json()["items"]
    assert themes and all(t["programmes"] == 1 for t in themes)
    hits = (await client.get("/v1/search", params={"q": "kryzys"}, headers=analyst)).json()
    assert all(h["programme_id"] == "cities" for h in hits["items"])
    forbidden = await client.get("/v1/themes", params={"programme": "greentech"}, headers=analyst)
    assert forbidden.status_code == 403
    run = await client.post("/v1/mining-runs", json={"scope": "cities"}, headers=analyst)
    assert run.status_code == 403
    rep = await client.get("/v1/reports/cycles/gt-1", headers=analyst)
    assert rep.status_code == 403


async def test_mining_run_api(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/mining-runs", json={"scope": "greentech"})
    assert r.status_code == 202, r.text
    run = r.json()
    assert run["status"] == "running"
    again = await client.post("/v1/mining-runs", json={"scope": "greentech"})
    assert again.status_code == 409
    got = await client.get(f"/v1/mining-runs/{run['id']}")
    assert got.status_code == 200 and got.json()["scope"] == "greentech"
    assert (await client.get("/v1/mining-runs/none")).status_code == 404
