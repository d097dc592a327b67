"""Facilitators-only notes (issue 12) stay out of every count a non-facilitator
key reads: theme sizes, cycles, organisations, languages and dates (the
``theme_facets`` fast path and the statement path alike), theme detail and
trend, practice support, exports; a theme made only of hidden statements is
neither listed nor fetchable for them. Admin and manager keys see everything.

Real stack: PostgreSQL with the migrations and triggers, the API app with its
Temporal client, notes created by the importer and their visibility changed
through ``PATCH /v1/notes/{id}`` (event + projector). The statements, themes
and practices are written as the miner writes them (``write_statements``; the
practice rows by SQL), so the numbers are known exactly without the model.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from auth_helpers import admin_headers, api_client, key_headers
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from nlp.types import Statement
from peerlearn.access import Principal, Role
from peerlearn.mining.store import NoteStatements, write_statements
from peerlearn.settings import Settings

NDJSON = {"Content-Type": "application/x-ndjson"}


class World:
    """The seeded programme: ids, keys and an admin client."""

    client: httpx.AsyncClient
    pool: AsyncConnectionPool
    database_url: str
    pid: str
    shared: str  # theme with visible and hidden statements
    only_hidden: str  # theme made only of the hidden note's statements
    hidden_note: str
    practice_shared: str
    practice_hidden: str
    manager: dict[str, str]
    analyst: dict[str, str]
    partner: dict[str, str]


def _lines(pid: str) -> bytes:
    def row(cycle: str, meeting: str, date: str, org: str, lang: str) -> dict[str, str]:
        return {"programme_id": pid, "programme_name": "Facets", "cycle_id": f"{pid}-{cycle}",
                "cycle_title": cycle, "meeting_id": meeting, "meeting_kind": "site_visit",
                "meeting_date": date, "host": "vaxa", "author_organisation": org,
                "language": lang, "text": f"Notes by {org} from {meeting}."}  # fmt: skip

    rows = [
        row("c1", "visit-1", "2024-05-10", "lodz", "en"),
        row("c1", "visit-1", "2024-05-10", "umea", "en"),
        row("c2", "visit-2", "2025-03-12", "vaxa", "sv"),  # the one hidden below
    ]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def _statement(note: dict[str, Any], position: int, kind: str = "lesson") -> Statement:
    return Statement(
        id=f"{note['id']}#{position}",
        source_id=note["id"],
        text=f"Statement {position} of {note['author_organisation']}.",
        language=note["language"],
        kind=kind,
        position=position,
        heading=None,
        content_hash=uuid.uuid4().hex,
        programme=note["programme_id"],
        cycle=note["cycle_id"],
        meeting=note["meeting_id"],
        organisation=note["author_organisation"],
        date=note["date"],
    )


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def world(
    temporal_env: WorkflowEnvironment, pool: AsyncConnectionPool, database_url: str
) -> AsyncIterator[World]:
    w = World()
    w.pool, w.database_url = pool, database_url
    w.pid = pid = "facets-" + uuid.uuid4().hex[:6]
    w.shared, w.only_hidden = f"{pid}-shared", f"{pid}-hidden"
    settings = Settings(
        database_url=database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        task_queue="facets-" + uuid.uuid4().hex[:6],
        load_demo=False,
    )
    async with api_client(create_app(settings), admin_headers(database_url)) as client:
        w.client = client
        r = await client.post("/v1/imports?mine=false", content=_lines(pid), headers=NDJSON)
        assert r.status_code == 201, r.text
        async with pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT * FROM notes WHERE programme_id = %s", (pid,))
            notes = {n["author_organisation"]: n for n in await cur.fetchall()}
            for n in notes.values():  # the meeting dates of _lines
                n["date"] = "2025-03-12" if n["author_organisation"] == "vaxa" else "2024-05-10"
            lodz, umea, vaxa = notes["lodz"], notes["umea"], notes["vaxa"]
            w.hidden_note = vaxa["id"]
            for tid in (w.shared, w.only_hidden):
                await conn.execute(
                    "INSERT INTO themes (id, scope, label) VALUES (%s, 'all', %s)", (tid, tid)
                )
            await write_statements(
                conn,
                [
                    NoteStatements(lodz["id"], [_statement(lodz, 1)], [w.shared]),
                    NoteStatements(umea["id"], [_statement(umea, 1)], [w.shared]),
                    NoteStatements(
                        vaxa["id"],
                        [_statement(vaxa, 1), _statement(vaxa, 2), _statement(vaxa, 3)],
                        [w.shared, w.shared, w.only_hidden],
                    ),
                ],
            )
            w.practice_shared, w.practice_hidden = f"P{pid}-s", f"P{pid}-h"
            for prid, tid, ids in (
                (w.practice_shared, w.shared, [f"{lodz['id']}#1", f"{vaxa['id']}#1"]),
                (w.practice_hidden, w.only_hidden, [f"{vaxa['id']}#3"]),
            ):
                await conn.execute(
                    "INSERT INTO theme_practices (id, theme_id, kind, statement_ids, wording_ids,"
                    " score) VALUES (%s, %s, 'lesson', %s, %s, 0.5)",
                    (prid, tid, ids, Jsonb({})),
                )
        r = await client.patch(f"/v1/notes/{vaxa['id']}", json={"visibility": "facilitators"})
        assert r.status_code == 200, r.text
        w.manager = key_headers(database_url, "manager", [pid])
        w.analyst = key_headers(database_url, "analyst", [pid])
        w.partner = key_headers(database_url, "partner", [pid], organisation="umea")
        yield w


# What each kind of key must read for the shared theme.
ALL = {"size": 4, "cycles": 2, "organisations": 3, "languages": {"en": 2, "sv": 2},
       "first_seen": "2024-05-10", "last_seen": "2025-03-12"}  # fmt: skip
VISIBLE = {"size": 2, "cycles": 1, "organisations": 2, "languages": {"en": 2},
           "first_seen": "2024-05-10", "last_seen": "2024-05-10"}  # fmt: skip


async def _themes(w: World, headers: dict[str, str], **params: str) -> dict[str, dict[str, Any]]:
    r = await w.client.get("/v1/themes", params={"limit": "200", **params}, headers=headers)
    assert r.status_code == 200, r.text
    return {t["id"]: t for t in r.json()["items"] if t["id"].startswith(w.pid)}


def _counts(t: dict[str, Any]) -> dict[str, Any]:
    return {k: t[k] for k in ALL}


# the fast path (grant, programme, language) and the statement path (dates)
SCOPES = [{}, {"programme": "P"}, {"since": "2000-01-01"}, {"until": "2030-01-01"}]


def _params(w: World, scope: dict[str, str]) -> dict[str, str]:
    return {k: (w.pid if v == "P" else v) for k, v in scope.items()}


@pytest.mark.parametrize("scope", SCOPES)
async def test_counts_per_role(world: World, scope: dict[str, str]) -> None:
    w = world
    params = _params(w, scope)
    for headers in (w.manager, {}):  # manager and admin: everything
        got = await _themes(w, headers, **params)
        assert _counts(got[w.shared]) == ALL, got
        assert got[w.only_hidden]["size"] == 1 and got[w.only_hidden]["languages"] == {"sv": 1}
    for headers in (w.analyst, w.partner):
        got = await _themes(w, headers, **params)
        assert _counts(got[w.shared]) == VISIBLE, got
        assert w.only_hidden not in got, got
    # a language filter selecting only hidden statements lists nothing for them
    sv = await _themes(w, w.analyst, language="sv", **params)
    assert sv == {}, sv
    assert set(await _themes(w, w.manager, language="sv", **params)) == {w.shared, w.only_hidden}


async def test_fast_and_statement_paths_agree_with_hidden_notes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counter path, less the hidden notes' counters, gives the statement
    path's numbers for every sort, role and filter the counters answer."""
    import peerlearn.readside.themes as analyst

    w = world
    facets = analyst.facets_answer
    principals = [
        Principal("m", Role.manager, frozenset({w.pid})),
        Principal("a", Role.analyst, frozenset({w.pid})),
        Principal("p", Role.partner, frozenset({w.pid}), organisation="umea"),
        Principal("x", Role.admin),
    ]
    filters = [
        analyst.Filters(),
        analyst.Filters(programme=w.pid),
        analyst.Filters(language="sv"),
        analyst.Filters(language="en", programme=w.pid),
        analyst.Filters(min_cycles=2),
    ]
    async with w.pool.connection() as conn:
        for p in principals:
            for f in filters:
                for sort in analyst.THEME_SORTS:
                    got = []
                    for use_facets in (True, False):
                        monkeypatch.setattr(
                            analyst, "facets_answer", facets if use_facets else lambda f: False
                        )
                        got.append(await analyst.list_themes(conn, p, f, sort=sort, limit=200))
                    assert got[0] == got[1], (p.role, f, sort)
    monkeypatch.setattr(analyst, "facets_answer", facets)


async def test_theme_detail_and_404(world: World) -> None:
    w = world
    for headers in (w.analyst, w.partner):
        r = await w.client.get(f"/v1/themes/{w.only_hidden}", headers=headers)
        assert r.status_code == 404, r.text
        r = await w.client.get(f"/v1/themes/{w.shared}", headers=headers)
        assert r.status_code == 200, r.text
        t = r.json()
        assert t["size"] == 2 and t["languages"] == {"en": 2}
        assert t["recurrence"]["cycles"] == 1 and t["recurrence"]["organisations"] == 2
        assert [m["month"] for m in t["trend"]] == ["2024-05"]
        assert w.hidden_note not in {s["note_id"] for s in t["sources"]}
        assert w.hidden_note not in r.text
    r = await w.client.get(f"/v1/themes/{w.only_hidden}", headers=w.manager)
    assert r.status_code == 200 and r.json()["size"] == 1
    t = (await w.client.get(f"/v1/themes/{w.shared}", headers=w.manager)).json()
    assert t["size"] == 4 and t["recurrence"]["cycles"] == 2
    assert [m["month"] for m in t["trend"]] == ["2024-05", "2025-03"]
    assert w.hidden_note in {s["note_id"] for s in t["sources"]}


async def test_curation_panel(world: World) -> None:
    """The curation panel's statements of a theme (analyst and manager keys)."""
    w = world
    r = await w.client.get(f"/v1/themes/{w.shared}/statements", headers=w.analyst)
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == 2 and w.hidden_note not in r.text
    r = await w.client.get(f"/v1/themes/{w.only_hidden}/statements", headers=w.analyst)
    assert r.status_code == 404, r.text
    r = await w.client.get(f"/v1/themes/{w.shared}/statements", headers=w.manager)
    assert len(r.json()["items"]) == 4 and w.hidden_note in r.text


async def test_practice_support_and_exports(world: World) -> None:
    w = world

    async def practices(headers: dict[str, str]) -> dict[str, dict[str, Any]]:
        r = await w.client.get(
            "/v1/practices", params={"programme": w.pid, "limit": "200"}, headers=headers
        )
        assert r.status_code == 200, r.text
        return {p["id"]: p for p in r.json()["items"]}

    got = await practices(w.manager)
    p = got[w.practice_shared]
    assert (p["support_organisations"], p["support_cycles"], p["support"]) == (2, 2, 4)
    assert w.practice_hidden in got
    for headers in (w.analyst, w.partner):
        got = await practices(headers)
        p = got[w.practice_shared]
        assert (p["support_organisations"], p["support_cycles"], p["support"]) == (1, 1, 2)
        assert w.hidden_note not in {s["note_id"] for s in p["sources"]}
        assert w.practice_hidden not in got
        r = await w.client.get("/v1/exports/themes.json", headers=headers)
        assert r.status_code == 200, r.text
        assert w.only_hidden not in r.text
    r = await w.client.get("/v1/exports/themes.json", headers=w.manager)
    assert w.only_hidden in r.text


# theme_facets recounted from statements, each in the class its note has now
# (migration 0018); any difference, either way, is a counter out of step.
_FACETS_DIFF = """
WITH s AS (
    SELECT st.*, coalesce(n.visibility = 'facilitators', false) AS h
    FROM statements st LEFT JOIN notes n ON n.id = st.note_id WHERE st.theme_id IS NOT NULL
), e AS (
    SELECT theme_id, coalesce(programme_id, '') AS p, language, 'n' AS dim, '' AS v, h FROM s
    UNION ALL SELECT theme_id, coalesce(programme_id, ''), language, 'c', cycle_id, h
    FROM s WHERE cycle_id IS NOT NULL
    UNION ALL SELECT theme_id, coalesce(programme_id, ''), language, 'o', organisation_id, h
    FROM s WHERE organisation_id IS NOT NULL
    UNION ALL SELECT theme_id, coalesce(programme_id, ''), language, 'd',
                     to_char(source_date, 'YYYY-MM-DD'), h
    FROM s WHERE source_date IS NOT NULL
), want AS (
    SELECT theme_id, p, language, dim::"char" AS dim, v, h, count(*)::int AS n
    FROM e GROUP BY 1, 2, 3, 4, 5, 6
), have AS (SELECT theme_id, programme_id, language, dim, value, hidden, n FROM theme_facets)
SELECT (SELECT count(*) FROM (SELECT * FROM want EXCEPT SELECT * FROM have) a)
     + (SELECT count(*) FROM (SELECT * FROM have EXCEPT SELECT * FROM want) b)
     + (SELECT count(*) FROM s WHERE s.note_hidden <> s.h) AS diff,
       (SELECT count(*) FROM have WHERE hidden) AS hidden_rows
"""


async def _facets_diff(w: World) -> tuple[int, int]:
    async with w.pool.connection() as conn:
        row = await (await conn.cursor(row_factory=dict_row).execute(_FACETS_DIFF)).fetchone()
    assert row is not None
    return int(row["diff"]), int(row["hidden_rows"])


async def test_counters_follow_visibility_rebuild_and_rewrites(world: World) -> None:
    """The hidden class follows the note: a projection rebuild (delete and
    re-insert of every note row), a re-mine's rewrite of the hidden note's
    statements, a statement moved to another theme, a rollback."""
    from peerlearn.projections import arebuild_projections

    w = world
    diff, hidden_rows = await _facets_diff(w)
    assert diff == 0 and hidden_rows > 0
    await arebuild_projections(w.database_url)
    assert await _facets_diff(w) == (0, hidden_rows)
    assert _counts((await _themes(w, w.analyst))[w.shared]) == VISIBLE
    async with w.pool.connection() as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute("SELECT * FROM notes WHERE id = %s", (w.hidden_note,))
        note = await cur.fetchone()
        assert note is not None
        note["date"] = "2025-03-12"
        sts = [_statement(note, 1), _statement(note, 2), _statement(note, 3)]
        await write_statements(
            conn, [NoteStatements(w.hidden_note, sts, [w.shared, w.shared, w.only_hidden])]
        )
        await conn.execute(
            "UPDATE statements SET theme_id = %s WHERE id = %s",
            (w.shared, f"{w.hidden_note}#3"),
        )
        await conn.rollback()
    assert await _facets_diff(w) == (0, hidden_rows)


async def test_statement_written_during_visibility_change(world: World) -> None:
    """A statement written while its note's visibility change is uncommitted
    waits for it (its note row is locked FOR SHARE) and lands in the new
    class, so no counter is left in the wrong class."""
    import asyncio

    w = world
    async with w.pool.connection() as changer, w.pool.connection() as writer:
        await changer.execute(
            "UPDATE notes SET visibility = 'programme' WHERE id = %s", (w.hidden_note,)
        )
        cur = writer.cursor(row_factory=dict_row)
        await cur.execute("SELECT * FROM notes WHERE id = %s", (w.hidden_note,))
        note = await cur.fetchone()
        assert note is not None and note["visibility"] == "facilitators"  # not committed

        async def write() -> None:
            # a new row only: no row lock of the change's to wait for but the note's
            await writer.execute(
                "INSERT INTO statements (id, note_id, position, programme_id, cycle_id,"
                " organisation_id, text, language, content_hash, theme_id, source_date)"
                " VALUES (%s, %s, 9, %s, %s, 'vaxa', 'Late.', 'sv', 'h9', %s, '2025-03-12')",
                (f"{w.hidden_note}#9", w.hidden_note, w.pid, note["cycle_id"], w.only_hidden),
            )
            await writer.commit()

        task = asyncio.create_task(write())
        await asyncio.sleep(0.5)
        assert not task.done()  # waiting for the note row
        await changer.commit()
        await asyncio.wait_for(task, 30)
    assert await _facets_diff(w) == (0, 0)
    async with w.pool.connection() as conn:  # back as the other tests left it
        await conn.execute("DELETE FROM statements WHERE id = %s", (f"{w.hidden_note}#9",))
        await conn.execute(
            "UPDATE notes SET visibility = 'facilitators' WHERE id = %s", (w.hidden_note,)
        )
    diff, hidden_rows = await _facets_diff(w)
    assert diff == 0 and hidden_rows > 0


async def test_visibility_back_to_programme_counts_again(world: World) -> None:
    """Runs last in the module: it undoes the hidden state the others read."""
    w = world
    r = await w.client.patch(f"/v1/notes/{w.hidden_note}", json={"visibility": "programme"})
    assert r.status_code == 200, r.text
    assert await _facets_diff(w) == (0, 0)
    for headers in (w.analyst, w.partner, w.manager):
        for scope in SCOPES:
            got = await _themes(w, headers, **_params(w, scope))
            assert _counts(got[w.shared]) == ALL, (scope, got)
            assert got[w.only_hidden]["size"] == 1
        r = await w.client.get(f"/v1/themes/{w.only_hidden}", headers=headers)
        assert r.status_code == 200, r.text
    r = await w.client.patch(f"/v1/notes/{w.hidden_note}", json={"visibility": "facilitators"})
    assert r.status_code == 200, r.text
    assert (await _facets_diff(w))[0] == 0
    assert w.shared not in {
        t for t, v in (await _themes(w, w.analyst)).items() if v["size"] == ALL["size"]
    }
    assert w.only_hidden not in await _themes(w, w.partner)
