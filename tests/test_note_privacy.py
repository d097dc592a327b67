"""Partners control their data (issue 12) on the real stack (PostgreSQL, a
Temporal dev server, the real miner): correct and withdraw a note while its
window is open (409 after, 404 outside the grant), per-note visibility, and
erasure by crypto-shredding: after erasing, a unique marker is gone from
every table, every file, every API answer and the search index, while every
event stream keeps its gap-free versions 1..n."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any, LiteralString

import httpx
import pytest_asyncio
from auth_helpers import admin_headers, api_client, key_headers
from privacy_support import assert_gap_free, tables_holding
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from api import uploads
from api.main import create_app
from peerlearn import documents
from peerlearn.events import EventType
from peerlearn.projections import arebuild_projections
from peerlearn.settings import Settings
from workflows.mining import MiningProgress, workflow_id_for_run

NDJSON = {"Content-Type": "application/x-ndjson"}
MARKER = "Zqxvorbland"  # a word no model, label or other note has


class Ctx:
    client: httpx.AsyncClient
    pool: AsyncConnectionPool
    database_url: str
    settings: Settings


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ctx(
    temporal_env: WorkflowEnvironment, pool: AsyncConnectionPool, database_url: str
) -> AsyncIterator[Ctx]:
    c = Ctx()
    c.pool, c.database_url = pool, database_url
    c.settings = Settings(
        database_url=database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        task_queue="privacy-" + uuid.uuid4().hex[:6],
        load_demo=False,
    )
    async with api_client(create_app(c.settings), admin_headers(database_url)) as client:
        c.client = client
        yield c


def _lines(pid: str, marker_text: str) -> bytes:
    base = {"programme_id": pid, "programme_name": "Privacy", "cycle_id": f"{pid}-c1",
            "cycle_title": "C1", "meeting_id": "visit-1", "meeting_kind": "site_visit",
            "meeting_date": "2024-05-10", "host": "vaxa"}  # fmt: skip
    rows = [
        {**base, "author_organisation": "lodz", "language": "en", "text": marker_text},
        {**base, "author_organisation": "umea", "language": "en",
         "text": "Matchmaking events between firms and researchers worked very well."},
        {**base, "author_organisation": "vaxa", "language": "en",
         "text": "Diversify funding beyond public grants; charge members for services."},
    ]  # fmt: skip
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


async def _rows(c: Ctx, q: LiteralString, *params: Any) -> list[dict[str, Any]]:
    async with c.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q, params)
        return await cur.fetchall()


async def _note(c: Ctx, pid: str, org: str) -> dict[str, Any]:
    [row] = await _rows(
        c, "SELECT * FROM notes WHERE programme_id = %s AND author_organisation = %s", pid, org
    )
    return row


async def _reopen(c: Ctx, cycle_id: str) -> None:
    """Imported cycles are completed (windows closed); the cycle workflow is
    what opens a window, so this test sets the read model it projects."""
    async with c.pool.connection() as conn:
        await conn.execute("UPDATE cycles SET status = 'running' WHERE id = %s", (cycle_id,))
        await conn.execute(
            "UPDATE meetings SET window_closed_at = NULL, state = 'held' WHERE cycle_id = %s",
            (cycle_id,),
        )


async def test_correct_withdraw_visibility_and_who_may(ctx: Ctx) -> None:
    c = ctx
    pid = "priv-" + uuid.uuid4().hex[:6]
    r = await c.client.post(
        "/v1/imports?mine=false", content=_lines(pid, "Quarterly meetings help."), headers=NDJSON
    )
    assert r.status_code == 201, r.text
    lodz = await _note(c, pid, "lodz")
    # imported cycle: completed, so the window is closed -> 409 problem+json
    r = await c.client.put(f"/v1/notes/{lodz['id']}", json={"text": "New text."})
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem")
    await _reopen(c, lodz["cycle_id"])
    own = key_headers(c.database_url, "partner", [pid], organisation="lodz")
    other = key_headers(c.database_url, "partner", [pid], organisation="umea")
    outsider = key_headers(c.database_url, "manager", ["elsewhere"])
    analyst = key_headers(c.database_url, "analyst", [pid])
    body = {"text": "Corrected: quarterly matchmaking meetings help.", "visibility": "public"}
    for h, code in ((other, 404), (outsider, 404), (analyst, 403)):
        r = await c.client.put(f"/v1/notes/{lodz['id']}", json=body, headers=h)
        assert r.status_code == code, (code, r.text)
    r = await c.client.put(f"/v1/notes/{lodz['id']}", json=body, headers=own)
    assert r.status_code == 200, r.text
    assert r.json() == {"note_id": lodz["id"], "version": 2, "visibility": "public"}
    now = await _note(c, pid, "lodz")
    assert now["text"] == body["text"] and now["version"] == 2 and now["visibility"] == "public"
    assert now["statement_count"] is None  # the reconciliation mines the new text
    # the log has the new version sealed: no clear text in any event
    evs = await _rows(c, "SELECT type, payload FROM events WHERE stream_id = %s", lodz["cycle_id"])
    assert EventType.NOTE_CORRECTED.value in [e["type"] for e in evs]
    assert not any("Corrected:" in json.dumps(e["payload"]) for e in evs)
    # Markdown body; keeps the language
    r = await c.client.put(
        f"/v1/notes/{lodz['id']}", content=b"## Visit\n- Matchmaking helps",
        headers={**own, "Content-Type": "text/markdown"},
    )  # fmt: skip
    assert r.status_code == 200 and r.json()["version"] == 3, r.text
    assert (await _note(c, pid, "lodz"))["format"] == "markdown"
    # bad text: the one validation path
    r = await c.client.put(f"/v1/notes/{lodz['id']}", json={"text": "a\x00b"}, headers=own)
    assert r.status_code == 422
    # visibility by the author, any value outside the three is 422
    r = await c.client.patch(
        f"/v1/notes/{lodz['id']}", json={"visibility": "facilitators"}, headers=own
    )
    assert r.status_code == 200 and (await _note(c, pid, "lodz"))["visibility"] == "facilitators"
    r = await c.client.patch(f"/v1/notes/{lodz['id']}", json={"visibility": "all"}, headers=own)
    assert r.status_code == 422
    # withdraw: gone from the read model, the stream keeps its versions
    r = await c.client.delete(f"/v1/notes/{lodz['id']}", headers=other)
    assert r.status_code == 404
    r = await c.client.delete(f"/v1/notes/{lodz['id']}", headers=own)
    assert r.status_code == 204, r.text
    assert not await _rows(c, "SELECT 1 FROM notes WHERE id = %s", lodz["id"])
    r = await c.client.get(f"/v1/cycles/{lodz['cycle_id']}/notes")
    assert lodz["id"] not in r.text
    await _assert_gap_free(c)


async def _assert_gap_free(c: Ctx) -> None:
    await assert_gap_free(c.pool)


async def _tables_holding(c: Ctx, marker: str) -> list[str]:
    return await tables_holding(c.pool, marker)


async def test_erasure_leaves_no_trace_and_streams_gap_free(
    ctx: Ctx, model_dir: Any, temporal_env: WorkflowEnvironment
) -> None:
    from mining_support import mining_settings
    from temporalio.worker import Worker

    from activities.mining import MiningActivities
    from peerlearn.mining import miner as miners
    from workflows.mining import ThemeMining

    c = ctx
    settings = mining_settings(model_dir, c.database_url)
    await miners.get_miner_async(settings)
    acts = MiningActivities(c.pool, settings)
    api_settings = Settings(
        database_url=c.database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        task_queue=settings.task_queue,
        load_demo=False,
    )
    pid = "erase-" + uuid.uuid4().hex[:6]
    text = f"The {MARKER} cluster runs matchmaking days between firms and researchers."
    async with (
        Worker(
            temporal_env.client, task_queue=settings.task_queue, workflows=[ThemeMining],
            activities=acts.all(),
        ),
        api_client(create_app(api_settings), admin_headers(c.database_url)) as client,
    ):  # fmt: skip
        r = await client.post("/v1/imports", content=_lines(pid, text), headers=NDJSON)
        assert r.status_code == 201, r.text
        [run_id] = r.json()["mining_runs"]
        progress = await temporal_env.client.get_workflow_handle(
            workflow_id_for_run(run_id), result_type=MiningProgress
        ).result()
        assert progress.status == "completed"
        lodz = await _note(c, pid, "lodz")
        # an uploaded original of the note (the upload path's store)
        data = f"# Visit\n- {text}\n".encode()
        doc = documents.extract("visit.md", "text/markdown", data, max_bytes=10**6, max_pages=50)
        up = uploads.Upload(filename="visit.md", data=data, document=doc)
        await uploads.keep_original(c.pool, up, lodz["id"], lodz["cycle_id"])
        # a stored report copy quoting it
        async with c.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO reports (id, cycle_id, programme_id, kind, content, markdown,"
                " created_at) VALUES (%s, %s, %s, 'wrap_up', %s, %s, now())"
                " ON CONFLICT (cycle_id) DO NOTHING",
                ("r-" + pid, lodz["cycle_id"], pid, json.dumps({"q": text}), text),
            )
        before = await _tables_holding(c, MARKER)
        assert {"notes.text", "statements.text", "document_blobs.data"} <= set(before), before
        hashes = [r["content_hash"] for r in await _rows(
            c, "SELECT content_hash FROM statements WHERE note_id = %s", lodz["id"])]  # fmt: skip
        assert hashes, "the note was mined into statements"
        r = await client.get("/v1/organisations/lodz/export")
        assert r.status_code == 200 and MARKER in r.text
        r = await client.get(
            "/v1/organisations/lodz/export",
            headers=key_headers(c.database_url, "partner", [pid], organisation="umea"),
        )
        assert r.status_code == 404

        # a facilitators-only note: out of an analyst's search, still a manager's
        vaxa = await _note(c, pid, "vaxa")
        # as the labeller would have it, had it picked the note's words
        async with c.pool.connection() as conn:
            await conn.execute(
                "UPDATE theme_labels SET label = 'diversify funding', keyphrases ="
                " '[\"public grants\"]' WHERE programme_id = %s AND theme_id ="
                " (SELECT theme_id FROM statements WHERE note_id = %s LIMIT 1)",
                (pid, vaxa["id"]),
            )
        r = await client.patch(f"/v1/notes/{vaxa['id']}", json={"visibility": "facilitators"})
        assert r.status_code == 200, r.text
        analyst = key_headers(c.database_url, "analyst", [pid])
        manager = key_headers(c.database_url, "manager", [pid])
        q = "/v1/search?q=Diversify%20funding%20beyond%20public%20grants"
        seen_by_manager = json.dumps((await client.get(q, headers=manager)).json()["items"])
        seen_by_analyst = json.dumps((await client.get(q, headers=analyst)).json()["items"])
        assert "Diversify funding" in seen_by_manager, seen_by_manager
        assert "Diversify funding" not in seen_by_analyst, seen_by_analyst
        theme = await _rows(c, "SELECT theme_id FROM statements WHERE note_id = %s", vaxa["id"])
        r = await client.get(f"/v1/themes/{theme[0]['theme_id']}", headers=analyst)
        assert "Diversify funding" not in r.text
        # the programme's labels, titles and keyphrases lose its words too
        for url in ("/v1/themes", f"/v1/themes/{theme[0]['theme_id']}"):
            r = await client.get(url, headers=analyst)
            assert r.status_code == 200, r.text
            assert "diversify" not in r.text.lower() and "grants" not in r.text.lower(), r.text
        r = await client.get("/v1/themes/map", headers=analyst)
        assert r.status_code == 200 and "Diversify funding" not in r.text
        assert "Matchmaking events" in r.text  # the map has the other notes
        # ... and out of a non-facilitator's report listings and totals (JSON, Markdown)
        partner = key_headers(c.database_url, "partner", [pid], organisation="umea")
        rep = f"/v1/reports/programmes/{pid}"
        by_manager = await client.get(rep, headers=manager)
        assert "Diversify funding" in by_manager.text, by_manager.text
        md = await client.get(rep, params={"format": "markdown"}, headers=manager)
        assert "Diversify funding" in md.text
        for h in (analyst, partner):
            r = await client.get(rep, headers=h)
            assert r.status_code == 200 and "Diversify funding" not in r.text, r.text
            assert r.json()["mined"]["notes"] == by_manager.json()["mined"]["notes"] - 1
            md = await client.get(rep, params={"format": "markdown"}, headers=h)
            assert md.status_code == 200 and "Diversify funding" not in md.text
        cyc = await client.get(f"/v1/reports/cycles/{pid}-c1", headers=analyst)
        assert cyc.json()["summary"]["notes"] == 2 and "Diversify funding" not in cyc.text
        cyc = await client.get(f"/v1/reports/cycles/{pid}-c1", headers=manager)
        assert cyc.json()["summary"]["notes"] == 3

        # erase everything lodz wrote
        r = await client.post("/v1/erasures", json={"organisation": "lodz", "reason": "request"})
        assert r.status_code == 201, r.text
        assert lodz["id"] in r.json()["note_ids"]
        # the affected scope is re-mined without the erased words
        [rerun] = r.json()["mining_runs"]
        progress = await temporal_env.client.get_workflow_handle(
            workflow_id_for_run(rerun), result_type=MiningProgress
        ).result()
        assert progress.status == "completed", progress
        assert (await client.get(f"/v1/mining-runs/{rerun}")).json()["trigger"] == "erasure"

        assert await _tables_holding(c, MARKER) == []
        assert not await _rows(
            c, "SELECT 1 FROM embeddings WHERE content_hash = ANY(%s)", hashes
        ), "the erased statements' vectors are still in the embeddings index"
        assert not await _rows(c, "SELECT 1 FROM note_keys WHERE organisation_id = 'lodz'")
        for url in (
            f"/v1/cycles/{lodz['cycle_id']}/notes",
            "/v1/themes",
            "/v1/practices",
            "/v1/organisations/lodz/export",
            f"/v1/notes/{lodz['id']}/original",
            f"/v1/search?q={MARKER}",
            "/v1/themes/map",
        ):
            r = await client.get(url)
            body = r.json() if r.headers.get("content-type", "").endswith("json") else r.text
            if isinstance(body, dict):
                body.pop("query", None)  # search echoes the question asked
            assert MARKER not in json.dumps(body), url
        tomb = await _rows(
            c, "SELECT payload FROM events WHERE type = %s AND payload->>'note_id' = %s",
            EventType.NOTE_ERASED.value, lodz["id"],
        )  # fmt: skip
        assert len(tomb) == 1 and "text" not in tomb[0]["payload"]
        await _assert_gap_free(c)
        # a rebuild from the log cannot bring the text back: its key is gone
        await arebuild_projections(c.database_url)
        assert not await _rows(c, "SELECT 1 FROM notes WHERE author_organisation = 'lodz'")
        assert len(await _rows(c, "SELECT 1 FROM notes WHERE programme_id = %s", pid)) == 2
        assert await _tables_holding(c, MARKER) == []


async def test_cli_erase_one_note(ctx: Ctx, tmp_path: Any) -> None:
    """``peerlearn erase --note ID`` erases that note only; an unknown id is exit 1."""
    import asyncio
    import os
    import subprocess
    import sys

    c = ctx
    pid = "cli-erase-" + uuid.uuid4().hex[:6]
    r = await c.client.post(
        "/v1/imports?mine=false", content=_lines(pid, "Quarterly meetings help."), headers=NDJSON
    )
    assert r.status_code == 201, r.text
    umea, vaxa = await _note(c, pid, "umea"), await _note(c, pid, "vaxa")
    env = {**os.environ, "DATABASE_URL": c.database_url, "PEERLEARN_HOME": str(tmp_path / "s")}
    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service.cli", "erase", "--note", umea["id"], "--reason", "asked"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "1 note(s) and 0 other writing(s) erased" in out.stdout
    assert not await _rows(c, "SELECT 1 FROM notes WHERE id = %s", umea["id"])
    assert await _rows(c, "SELECT 1 FROM notes WHERE id = %s", vaxa["id"])
    again = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service.cli", "erase", "--note", "no-such-note"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 1 and "not found" in again.stderr
    await _assert_gap_free(c)
