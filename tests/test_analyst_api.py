"""The analyst API on a mined multilingual fixture: themes with per-language
counts, filters and cursor pagination, theme detail, practices, cross-lingual
search, exports, mining runs, the wrap-up report, and the programme grant."""

from __future__ import annotations

import base64
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
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from activities.mining import MiningActivities
from api.main import create_app
from peerlearn.mining import miner as miners
from peerlearn.settings import Settings


@pytest.fixture(scope="module")
def settings(model_dir: Path, database_url: str, temporal_env: WorkflowEnvironment) -> Settings:
    target = temporal_env.client.service_client.config.target_host
    return mining_settings(model_dir, database_url, TEMPORAL_ADDRESS=target)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def mined(pool: AsyncConnectionPool, settings: Settings) -> dict[str, Any]:
    await miners.get_miner_async(settings)
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
    assert any(
        "kris" in h["text"].lower() or "crisis" in h["text"].lower()
        for h in top
        if h["language"] != "pl"
    )
    assert all(h["theme"] is None or h["theme"]["id"] for h in hits)
    only_sv = await client.get("/v1/search", params={"q": "kryzys członkowie", "language": "sv"})
    assert only_sv.json()["items"] and all(h["language"] == "sv" for h in only_sv.json()["items"])


async def test_exports_csv_and_json(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/exports/themes.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows and "n_sv" in rows[0]
    assert rows[0]["title"]
    j = (await client.get("/v1/exports/practices.json")).json()
    assert j and "support_cycles" in j[0]
    assert len({p["id"] for p in j}) == len(j)  # one row per idea
    assert any(len(p["wordings"]) >= 3 and p["glosses"] for p in j)
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
    for heading in (
        "## Recurring themes",
        "## Recommendations",
        "For funders",
        "## Open action items",
        "## What changed since the previous cycle",
    ):
        assert heading in md
    html = await client.get("/v1/reports/programmes/greentech", params={"format": "html"})
    assert html.status_code == 200 and html.text.startswith("<!doctype html>")
    assert "Recommendations" in html.text and "@media print" in html.text


async def test_grant_filters_everything(client: httpx.AsyncClient, database_url: str) -> None:
    analyst = key_headers(database_url, "analyst", programmes=["cities"])
    themes = (await client.get("/v1/themes", headers=analyst)).json()["items"]
    assert themes and all(t["programmes"] == 1 for t in themes)
    hits = (await client.get("/v1/search", params={"q": "kryzys"}, headers=analyst)).json()
    assert all(h["programme_id"] == "cities" for h in hits["items"])
    hidden = await client.get("/v1/themes", params={"programme": "greentech"}, headers=analyst)
    unknown = await client.get("/v1/themes", params={"programme": "nowhere"}, headers=analyst)
    assert hidden.status_code == unknown.status_code == 404
    run = await client.post("/v1/mining-runs", json={"scope": "cities"}, headers=analyst)
    assert run.status_code == 403
    # a cycle of another programme answers like an unknown one: its programme is not named
    rep = await client.get("/v1/reports/cycles/gt-1", headers=analyst)
    ghost = await client.get("/v1/reports/cycles/gt-404", headers=analyst)
    assert rep.status_code == ghost.status_code == 404
    assert "greentech" not in rep.text and rep.json()["detail"] == "cycle 'gt-1' not found"


async def test_titles_served(client: httpx.AsyncClient, database_url: str) -> None:
    """Each theme has a readable title (words, not a lemma triple) and titles per
    language; a restricted key reads its programme's titles only."""
    items = (await client.get("/v1/themes")).json()["items"]
    assert items and all(t["title"] and " " in t["title"] for t in items)
    t = next(t for t in items if {"en", "sv", "pl"} <= set(t["languages"]))
    assert {"en", "sv", "pl"} <= set(t["titles"]), t
    d = (await client.get(f"/v1/themes/{t['id']}")).json()
    assert d["title"] == t["title"] and d["titles"] == t["titles"]
    analyst = key_headers(database_url, "analyst", programmes=["cities"])
    mine = (await client.get("/v1/themes", headers=analyst)).json()["items"]
    assert mine and all(x["title"] for x in mine)


async def test_one_idea_one_practice(client: httpx.AsyncClient) -> None:
    """The same lesson written in English, Swedish and Polish is listed once, with
    a wording per language and support over distinct organisations and cycles."""
    items = (await client.get("/v1/practices", params={"limit": 200})).json()["items"]
    assert items
    seen: set[str] = set()
    for p in items:
        ids = set(p["statement_ids"])
        assert not ids & seen, "a statement belongs to one idea only"
        seen |= ids
        assert p["id"].startswith("P") and p["title"] == p["wordings"][p["title_language"]]["text"]
        orgs = {s["organisation_id"] for s in p["sources"]}
        assert p["support_organisations"] >= len(orgs - {None})
        assert len({s["note_id"] for s in p["sources"]}) == len(p["sources"])
    multi = [p for p in items if {"en", "sv", "pl"} <= set(p["wordings"])]
    assert multi, [(p["title"], list(p["wordings"])) for p in items]
    assert max(p["support_organisations"] for p in multi) >= 3
    for p in multi:
        for lang, w in p["wordings"].items():
            if lang != "en" and "gloss" in w:
                assert w["gloss"]["label"] == "similar English statement (not a translation)"
                assert w["gloss"]["english_text"] and 0 < w["gloss"]["similarity"] <= 1
    assert any("gloss" in w for p in multi for lg, w in p["wordings"].items() if lg != "en")
    tid = multi[0]["theme_id"]
    per_theme = (await client.get("/v1/practices", params={"theme": tid})).json()["items"]
    assert multi[0]["id"] in {p["id"] for p in per_theme}
    detail = (await client.get(f"/v1/themes/{tid}")).json()
    assert [p["id"] for p in detail["practices"]] == [p["id"] for p in per_theme]


async def test_glosses_beside_non_english(client: httpx.AsyncClient, database_url: str) -> None:
    items = (await client.get("/v1/themes")).json()["items"]
    tid = next(t["id"] for t in items if {"en", "sv", "pl"} <= set(t["languages"]))
    d = (await client.get(f"/v1/themes/{tid}")).json()
    reps = [r for lang, rs in d["representatives"].items() if lang != "en" for r in rs]
    glossed = [r for r in reps if "gloss" in r]
    assert glossed, reps
    assert all(r["gloss"]["label"].startswith("similar English statement") for r in glossed)
    assert all("gloss" not in r for r in d["representatives"]["en"])
    hits = (await client.get("/v1/search", params={"q": "kryzys członkowie"})).json()["items"]
    assert any("gloss" in h for h in hits if h["language"] != "en")
    assert all("gloss" not in h for h in hits if h["language"] == "en")
    # a key of one programme never reads another programme's English as a gloss
    analyst = key_headers(database_url, "analyst", programmes=["cities"])
    ps = (await client.get("/v1/practices", headers=analyst)).json()["items"]
    assert ps and all(s["programme_id"] == "cities" for p in ps for s in p["sources"])
    glosses = [w["gloss"] for p in ps for w in p["wordings"].values() if "gloss" in w]
    hits = (await client.get("/v1/search", params={"q": "kryzys"}, headers=analyst)).json()
    glosses += [h["gloss"] for h in hits["items"] if "gloss" in h]
    cities = await client.get("/v1/search", params={"q": "solar", "limit": 100}, headers=analyst)
    visible = {h["statement_id"] for h in cities.json()["items"]}
    assert all(g["english_statement_id"] in visible for g in glosses)


async def test_report_reads_for_a_funder(client: httpx.AsyncClient) -> None:
    """Titles, each idea once, English glosses beside Swedish and Polish, plurals
    and dates without microseconds in the Markdown, HTML and JSON report."""
    import re

    j = (await client.get("/v1/reports/programmes/greentech")).json()
    ideas = [p["id"] for t in j["themes"] for p in t["practices"]]
    assert len(ideas) == len(set(ideas))
    for t in j["themes"]:
        for p in t["practices"]:
            keys = [(s["organisation"], s["meeting"], s["date"]) for s in p["sources"]]
            assert len(keys) == len(set(keys)), "each source once"
    md = (await client.get("/v1/reports/programmes/greentech", params={"format": "markdown"})).text
    assert "similar English statement (not a translation)" in md
    assert not re.search(r"\b1 (notes|statements|cycles|organisations|languages)\b", md)
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", md)
    page = await client.get("/v1/reports/programmes/greentech", params={"format": "html"})
    assert "similar English statement (not a translation)" in page.text


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


# ---- pre-aggregated theme facets (migration 0005) and the search fast path -------------

_FACETS_DIFF = """
WITH e AS (
    SELECT theme_id, coalesce(programme_id, '') AS p, language, 'n' AS dim, '' AS v
    FROM statements WHERE theme_id IS NOT NULL
    UNION ALL SELECT theme_id, coalesce(programme_id, ''), language, 'c', cycle_id
    FROM statements WHERE theme_id IS NOT NULL AND cycle_id IS NOT NULL
    UNION ALL SELECT theme_id, coalesce(programme_id, ''), language, 'o', organisation_id
    FROM statements WHERE theme_id IS NOT NULL AND organisation_id IS NOT NULL
    UNION ALL SELECT theme_id, coalesce(programme_id, ''), language, 'd',
                     to_char(source_date, 'YYYY-MM-DD')
    FROM statements WHERE theme_id IS NOT NULL AND source_date IS NOT NULL
), want AS (
    SELECT theme_id, p, language, dim::"char" AS dim, v, count(*)::int AS n
    FROM e GROUP BY 1, 2, 3, 4, 5
), have AS (SELECT theme_id, programme_id, language, dim, value, n FROM theme_facets)
SELECT (SELECT count(*) FROM (SELECT * FROM want EXCEPT SELECT * FROM have) a)
     + (SELECT count(*) FROM (SELECT * FROM have EXCEPT SELECT * FROM want) b) AS diff,
       (SELECT count(*) FROM have) AS rows
"""


async def _facets_diff(conn: Any) -> int:
    row = await (await conn.execute(_FACETS_DIFF)).fetchone()
    assert row["rows"] > 0
    return int(row["diff"])


async def test_theme_facets_follow_every_write(
    mined: dict[str, Any], pool: AsyncConnectionPool
) -> None:
    """The triggers keep theme_facets equal to a recount from statements after
    ingestion and a re-mine's bulk UPDATE, and inside a writer's transaction
    for upserts (changed programme, organisation, theme), deletes, theme moves
    and updates of uncounted columns; a rollback leaves them as they were."""
    from nlp.types import Statement
    from peerlearn.mining.store import NoteStatements, write_statements

    async with pool.connection() as conn:
        assert await _facets_diff(conn) == 0
        cur = conn.cursor(row_factory=dict_row)
        rows = await (
            await cur.execute(
                "SELECT * FROM statements WHERE theme_id IS NOT NULL ORDER BY id LIMIT 12"
            )
        ).fetchall()
        themes = [r["id"] for r in await (await cur.execute("SELECT id FROM themes")).fetchall()]
        by_note: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_note.setdefault(r["note_id"], []).append(r)
        writes = []
        for i, (note_id, rs) in enumerate(by_note.items()):
            sts = [
                Statement(
                    id=r["id"],
                    source_id=note_id,
                    position=r["position"],
                    text=r["text"],
                    language=r["language"],
                    kind=r["kind"],
                    heading=None,
                    content_hash=r["content_hash"],
                    lemmas=[],
                    programme=f"moved-{i % 2}",
                    cycle=rs[0]["cycle_id"],
                    meeting=None,
                    organisation="org-moved",
                    date="2025-02-03",
                )
                for r in rs
            ]
            writes.append(
                NoteStatements(
                    note_id,
                    sts,
                    [themes[j % len(themes)] if j % 3 else None for j in range(len(rs))],
                )
            )
        await write_statements(conn, writes)
        assert await _facets_diff(conn) == 0
        await conn.execute("DELETE FROM statements WHERE id = %s", (rows[-1]["id"],))
        assert await _facets_diff(conn) == 0
        await conn.execute(
            "UPDATE statements SET theme_id = %s WHERE id IN"
            " (SELECT id FROM statements ORDER BY md5(id) LIMIT 40)",
            (themes[0],),
        )
        assert await _facets_diff(conn) == 0
        await conn.execute("UPDATE statements SET map_x = coalesce(map_x, 0) + 1")
        assert await _facets_diff(conn) == 0
        await conn.rollback()
        assert await _facets_diff(conn) == 0


async def test_theme_facets_answer_like_statements(
    mined: dict[str, Any], pool: AsyncConnectionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counter path and the statement path of list_themes agree (every sort,
    the grant, programme, language and min_cycles filters, cursor pages)."""
    import peerlearn.readside.themes as analyst
    from peerlearn.access import Principal, Role

    principals = [Principal("a", Role.admin), Principal("b", Role.analyst, frozenset({"cities"}))]
    filters = [
        analyst.Filters(),
        analyst.Filters(programme="cities"),
        analyst.Filters(language="sv"),
        analyst.Filters(min_cycles=2),
        analyst.Filters(language="pl", programme="cities"),
    ]
    facets = analyst.facets_answer
    async with pool.connection() as conn:
        for p in principals:
            for f in filters:
                for sort in analyst.THEME_SORTS:
                    got = []
                    for use_facets in (True, False):
                        monkeypatch.setattr(
                            analyst, "facets_answer", facets if use_facets else lambda f: False
                        )
                        first = await analyst.list_themes(conn, p, f, sort=sort, limit=2)
                        pages = [first]
                        if first[1]:
                            pages.append(
                                await analyst.list_themes(
                                    conn, p, f, sort=sort, limit=2, cursor=first[1]
                                )
                            )
                        got.append(pages)
                    assert got[0] == got[1], (p.role, f, sort)
    monkeypatch.setattr(analyst, "facets_answer", facets)
    assert analyst.facets_answer(analyst.Filters(language="sv", programme="x"))
    assert not analyst.facets_answer(analyst.Filters(kind="lesson"))


async def test_search_scores_and_exact_fallback(
    client: httpx.AsyncClient, pool: AsyncConnectionPool
) -> None:
    """Hits come ordered by the de-biased score with their plain cosine; a filter
    too narrow for the candidates answers from an exact scan of its statements."""
    r = await client.get("/v1/search", params={"q": "crisis engagement of members"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    hits = r.json()["items"]
    assert len(hits) == 10 and r.json()["exact"] is False
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(-1.0 <= h["similarity"] <= 1.0 for h in hits)
    assert len({h["statement_id"] for h in hits}) == 10
    async with pool.connection() as conn:
        org = await (
            await conn.cursor(row_factory=dict_row).execute(
                "SELECT organisation_id AS o, count(*) AS n FROM statements"
                " WHERE organisation_id IS NOT NULL GROUP BY 1 ORDER BY 2, 1 LIMIT 1"
            )
        ).fetchone()
    assert org is not None
    narrow = (
        await client.get(
            "/v1/search", params={"q": "crisis engagement of members", "organisation": org["o"]}
        )
    ).json()
    assert narrow["exact"] is True
    assert len(narrow["items"]) == min(10, org["n"])
    assert all(h["organisation_id"] == org["o"] for h in narrow["items"])


async def test_note_text_stays_inert_in_exports_and_reports(
    client: httpx.AsyncClient, pool: AsyncConnectionPool
) -> None:
    """A statement and a theme label carrying a spreadsheet formula and raw HTML:
    the CSV cell is prefixed with ', the Markdown report escapes the HTML, the
    HTML page escapes it and is served with a strict CSP and nosniff."""
    j = (await client.get("/v1/reports/programmes/greentech")).json()
    theme = j["themes"][0]
    sid = theme["practices"][0]["statement_id"]
    evil_text = '=HYPERLINK("http://evil.example","x") <script>alert(1)</script>'
    evil_label = "@cmd <img src=x onerror=alert(1)>"
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT text FROM statements WHERE id = %s", (sid,))
        text = (await cur.fetchone())["text"]  # type: ignore[index]
        await cur.execute("SELECT label FROM themes WHERE id = %s", (theme["id"],))
        label = (await cur.fetchone())["label"]  # type: ignore[index]
        await cur.execute("UPDATE statements SET text = %s WHERE id = %s", (evil_text, sid))
        await cur.execute("UPDATE themes SET label = %s WHERE id = %s", (evil_label, theme["id"]))
    try:
        r = await client.get("/v1/exports/practices.csv", params={"programme": "greentech"})
        assert r.headers["x-content-type-options"] == "nosniff"
        row = next(x for x in csv.DictReader(io.StringIO(r.text)) if x["statement_id"] == sid)
        assert row["text"] == "'" + evil_text
        r = await client.get("/v1/exports/themes.csv")
        row = next(x for x in csv.DictReader(io.StringIO(r.text)) if x["id"] == theme["id"])
        assert row["label"] == "'" + evil_label
        md = await client.get("/v1/reports/programmes/greentech", params={"format": "markdown"})
        assert md.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in md.text and "<img" not in md.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md.text
        page = await client.get("/v1/reports/programmes/greentech", params={"format": "html"})
        assert "<script>" not in page.text and "<img" not in page.text
        csp = page.headers["content-security-policy"]
        assert csp.startswith("default-src 'none'") and "script-src" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
    finally:
        async with pool.connection() as conn:
            await conn.execute("UPDATE statements SET text = %s WHERE id = %s", (text, sid))
            await conn.execute("UPDATE themes SET label = %s WHERE id = %s", (label, theme["id"]))


def _tampered() -> list[str]:
    """Cursors no page of ours issued: not base64/JSON, wrong shape, wrong types,
    NUL and lone surrogates (which PostgreSQL would refuse with a 500)."""

    def b64(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    return [
        "AA",
        "!!!",
        b64("{}"),
        b64("[]"),
        b64('[{"x": 1}, "id"]'),
        b64('["a", "b", "c", "d"]'),
        b64('[1, 2, 3, "\\u0000"]'),
        b64('[1, 2, 3, "\\ud800"]'),
        b64("[1, 2.5, true]"),
        b64("[" + "9" * 5000 + ', 1, 1, "x"]'),
    ]


async def test_tampered_cursors_are_400(client: httpx.AsyncClient) -> None:
    for path in ("/v1/themes", "/v1/practices"):
        for cursor in _tampered():
            r = await client.get(path, params={"cursor": cursor})
            assert r.status_code == 400, (path, cursor, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "cursor" in r.json()["detail"]
    # an issued cursor still pages
    page = (await client.get("/v1/themes", params={"limit": 1})).json()
    nxt = await client.get("/v1/themes", params={"limit": 1, "cursor": page["next_cursor"]})
    assert nxt.status_code == 200 and nxt.json()["items"] != page["items"]


async def test_report_with_anonymous_sources(client: httpx.AsyncClient) -> None:
    """``sources=anonymous`` (issue 12): no organisation the named report shows
    appears in the anonymous one (JSON, Markdown, HTML); each is described."""
    import json
    import re

    url = "/v1/reports/programmes/greentech"
    named = (await client.get(url)).json()
    orgs = {
        s["organisation"] for t in named["themes"] for p in t["practices"] for s in p["sources"]
    }
    assert orgs
    anon = (await client.get(url, params={"sources": "anonymous"})).json()
    shown = {
        s["organisation"] for t in anon["themes"] for p in t["practices"] for s in p["sources"]
    }
    assert shown and all(re.fullmatch(r"a .*partner.* \(partner [A-Z]+\)", s) for s in shown), shown
    assert len(shown) == len(orgs)  # one stable alias per organisation
    for fmt in ("markdown", "html"):
        r = await client.get(url, params={"sources": "anonymous", "format": fmt})
        assert r.status_code == 200 and "(partner A)" in r.text
        bodies = [r.text, json.dumps(anon)]
        for org in orgs:
            for body in bodies:
                assert not re.search(rf"(?<![\w-]){re.escape(org)}(?![\w-])", body), (org, fmt)
    r = await client.get(url, params={"sources": "everyone"})
    assert r.status_code == 422
