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
import pytest
import pytest_asyncio
from auth_helpers import admin_headers, api_client, key_headers
from cycle_support import create_programme, cycle_input, cycle_worker
from privacy_support import assert_gap_free, history_bytes, tables_holding
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from peerlearn.settings import Settings
from workflows.cycle import PeerLearningCycle
from workflows.types import MarkHeldInput, MeetingPlan, SubmitNoteInput, workflow_id_for

ANNA = {"name": "Anna Berg", "email": "anna.berg@p1.example", "language": "en",
        "role": "participant"}  # fmt: skip


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
        c.programme_id = await create_programme(pool, contacts={"p1": [ANNA]})
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


async def test_named_person_erased_and_no_clear_text_in_temporal(
    ctx: Ctx, temporal_env: WorkflowEnvironment
) -> None:
    """Notes name who wrote them (JSON field, text header, form field); the
    API seals text and name before the cycle workflow sees them, so the
    Temporal history holds neither; erasing a named person (matched ignoring
    case and spacing, and through a programme contact's name/e-mail pair)
    removes exactly that person's notes from every table."""
    c = ctx
    url = f"/v1/cycles/{c.cycle_id}/meetings/kickoff/notes"
    p1 = key_headers(c.database_url, "partner", [c.programme_id], organisation="p1")
    zelda, anna_mail, anna_name, keep = "Vorquilent", "Brastomyr", "Quendrivox", "Plovendrast"
    body = {"author_organisation": "p1", "language": "en"}
    r = await c.client.post(url, headers=p1, json={
        **body, "author_person": "Zelda Quorvin",
        "text": f"The {zelda} desk matches firms with researchers every month."})  # fmt: skip
    assert r.status_code == 201, r.text
    zelda_id = r.json()["note_id"]
    r = await c.client.post(
        url, content=f"Our {anna_mail} vouchers paid for the first prototype.".encode(),
        headers={**p1, "Content-Type": "text/plain", "X-Author-Organisation": "p1",
                 "Content-Language": "en", "X-Author-Person": "anna.berg@p1.example"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    anna_mail_id = r.json()["note_id"]
    r = await c.client.post(
        url, headers=p1,
        files={"file": ("a.md", f"# Visit\n- The {anna_name} lab opened to SMEs".encode(),
                        "text/markdown")},
        data={"author_organisation": "p1", "language": "en", "author_person": "Anna Berg"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    anna_name_id = r.json()["note_id"]
    r = await c.client.post(url, headers=p1, json={
        **body, "author_person": "Bo Ek", "text": f"The {keep} fund co-finances pilots."
    })  # fmt: skip
    assert r.status_code == 201, r.text
    keep_id = r.json()["note_id"]
    # a key of one named person signs as them, and only as them
    bo_key = key_headers(c.database_url, "partner", [c.programme_id], organisation="p1",
                         person="Bo Ek")  # fmt: skip
    assert (await c.client.get("/v1/me", headers=bo_key)).json()["person"] == "Bo Ek"
    r = await c.client.post(url, headers=bo_key, json={**body, "text": f"Bo on the {keep} fund."})
    assert r.status_code == 201, r.text
    bo_by_key = r.json()["note_id"]
    r = await c.client.post(url, headers=bo_key, json={
        **body, "author_person": "Zelda Quorvin", "text": "Signed as someone else."})  # fmt: skip
    assert r.status_code == 422 and "belongs to 'Bo Ek'" in r.text, r.text
    for bad in ("Anna\x00Berg", "Anna\nBerg", "", " " * 3, "x" * 201):
        r = await c.client.post(url, headers=p1, json={**body, "author_person": bad, "text": "ok"})
        assert r.status_code == 422, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")

    # who wrote it: the author's organisation and facilitators see it, analysts do not
    rows = (await c.client.get(f"/v1/cycles/{c.cycle_id}/notes", headers=p1)).json()["items"]
    by_id = {n["id"]: n for n in rows}
    assert by_id[zelda_id]["author_person"] == "Zelda Quorvin"
    assert by_id[anna_mail_id]["author_person"] == "anna.berg@p1.example"
    analyst = key_headers(c.database_url, "analyst", [c.programme_id])
    rows = (await c.client.get(f"/v1/cycles/{c.cycle_id}/notes", headers=analyst)).json()
    assert rows["items"] and all(n["author_person"] is None for n in rows["items"])

    # nothing personal in clear in the Temporal history or the event log
    history = await history_bytes(temporal_env.client, workflow_id_for(c.cycle_id))
    assert b"submit_notes" in history  # the updates are in it ...
    readable = {"notes.text", "notes.author_person", "statements.text", "document_blobs.data",
                "note_keys.author_person_key"}  # fmt: skip
    for word in (zelda, anna_mail, anna_name, keep, "Zelda Quorvin", "anna.berg@p1.example"):
        assert word.encode() not in history, word  # ... but only sealed
        if word != ANNA["email"]:  # (the contact's own address is in the programme)
            found = set(await tables_holding(c.pool, word))
            assert found and found <= readable, (word, found)

    # erase Anna: her name, her e-mail (a contact of p1), any case and spacing
    r = await c.client.post("/v1/erasures", json={"person": "  anna   BERG "})
    assert r.status_code == 201, r.text
    assert sorted(r.json()["note_ids"]) == sorted([anna_mail_id, anna_name_id])
    for word in (anna_mail, anna_name):
        assert await tables_holding(c.pool, word) == [], word
    assert await _row(c, "SELECT 1 AS x FROM notes WHERE id = %s", keep_id)
    assert await _row(c, "SELECT 1 AS x FROM notes WHERE id = %s", zelda_id)
    # Zelda, within p1: her name is then in no table at all (the record keeps a digest)
    r = await c.client.post("/v1/erasures", json={"person": "zelda quorvin", "organisation": "p1"})
    assert r.status_code == 201 and r.json()["note_ids"] == [zelda_id], r.text
    assert await tables_holding(c.pool, "Quorvin") == []
    assert await tables_holding(c.pool, zelda) == []
    rec = await _row(c, "SELECT target_kind, target FROM erasures WHERE id = %s", r.json()["id"])
    assert rec is not None and rec["target_kind"] == "person"
    assert rec["target"].startswith("person:")
    # the keys are gone: what Temporal keeps is unreadable; Bo's note stays
    history = await history_bytes(temporal_env.client, workflow_id_for(c.cycle_id))
    assert not any(w.encode() in history for w in (zelda, anna_mail, anna_name, "Quorvin"))
    assert (await tables_holding(c.pool, keep)) != []
    # nobody of that name: 404; a note id goes alone: 422
    r = await c.client.post("/v1/erasures", json={"person": "Nobody Atall"})
    assert r.status_code == 404, r.text
    r = await c.client.post("/v1/erasures", json={"person": "Bo Ek", "note_id": keep_id})
    assert r.status_code == 422, r.text
    # right to a copy for one person
    r = await c.client.get("/v1/organisations/p1/export", params={"person": "bo ek"})
    assert r.status_code == 200
    assert sorted(n["id"] for n in r.json()["notes"]) == sorted([keep_id, bo_by_key])
    # the check above can see a clear word: a caller that does not seal (a
    # direct Temporal client) leaves its text readable in the history
    handle = temporal_env.client.get_workflow_handle(workflow_id_for(c.cycle_id))
    _ = await handle.execute_update(  # (typed as the handler's coroutine; see test_cycle_workflow)
        PeerLearningCycle.submit_notes,
        SubmitNoteInput(meeting_id="kickoff", client_key=uuid.uuid4().hex,
                        author_organisation="p2", language="en", text="Unsealed Clarbenwick."),
    )  # fmt: skip
    assert b"Clarbenwick" in await history_bytes(temporal_env.client, workflow_id_for(c.cycle_id))
    # a sealed text that does not open with its note's key can never be stored:
    # refused (NoteRejected), and the cycle takes the next note as before
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        _ = await handle.execute_update(
            PeerLearningCycle.submit_notes,
            SubmitNoteInput(meeting_id="kickoff", client_key=uuid.uuid4().hex,
                            author_organisation="p2", language="en",
                            note_id=str(uuid.uuid4()), text_sealed="AAAAAAAAAAAAAAAAAAAAAAAA"),
        )  # fmt: skip
    assert "the note was not stored" in str(refused.value.cause), refused.value.cause
    r = await c.client.post(url, headers=p1, json={**body, "text": "Still taking notes."})
    assert r.status_code == 201, r.text
    await assert_gap_free(c.pool)
