"""Notes uploaded as documents, over HTTP on the real stack (PostgreSQL, a
Temporal dev server, the cycle workflow): every format becomes a note through
the same path as a JSON note, every bad file is a 4xx problem+json, and the
original is kept once per content and downloadable by those who may read the
note (and nobody else)."""

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
from document_samples import (
    docx_bytes,
    eml_bytes,
    encrypted_pdf_bytes,
    odt_bytes,
    pdf_bytes,
)
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.main import create_app
from peerlearn.settings import Settings
from workflows.cycle import PeerLearningCycle
from workflows.types import MarkHeldInput, MeetingPlan, workflow_id_for

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ITEMS = ["Matchmaking with researchers works well", "Share the onboarding template"]


class Ctx:
    client: httpx.AsyncClient
    pool: AsyncConnectionPool
    database_url: str
    programme_id: str
    cycle_id: str
    worker: Worker


async def _held_cycle(
    env: WorkflowEnvironment, pool: AsyncConnectionPool, tq: str
) -> tuple[str, str]:
    pid = await create_programme(pool)
    cid = "doc-" + uuid.uuid4().hex[:6]
    t0 = datetime.now(UTC)
    plan = [
        MeetingPlan(meeting_id="kickoff", kind="kickoff", starts_at=t0 + timedelta(days=3)),
        MeetingPlan(meeting_id="later", kind="webinar", starts_at=t0 + timedelta(days=20)),
    ]
    handle = await env.client.start_workflow(
        PeerLearningCycle.run, cycle_input(cid, pid, plan), id=workflow_id_for(cid), task_queue=tq
    )
    await handle.signal(PeerLearningCycle.mark_held, MarkHeldInput(meeting_id="kickoff"))
    for _ in range(200):
        async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT state FROM meetings WHERE cycle_id = %s AND id = 'kickoff'", (cid,)
            )
            row = await cur.fetchone()
        if row and row["state"] == "held":
            return pid, cid
        await asyncio.sleep(0.1)
    raise AssertionError("kickoff never held")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ctx(
    temporal_env: WorkflowEnvironment, pool: AsyncConnectionPool, database_url: str
) -> AsyncIterator[Ctx]:
    c = Ctx()
    c.pool, c.database_url = pool, database_url
    tq = "docs-" + uuid.uuid4().hex[:6]
    settings = Settings(
        database_url=database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        task_queue=tq,
        load_demo=False,
        max_document_bytes=300_000,
        max_document_pages=5,
    )
    async with cycle_worker(temporal_env.client, pool, tq):
        c.programme_id, c.cycle_id = await _held_cycle(temporal_env, pool, tq)
        async with api_client(create_app(settings), admin_headers(database_url)) as client:
            c.client = client
            yield c


def _url(c: Ctx, meeting: str = "kickoff") -> str:
    return f"/v1/cycles/{c.cycle_id}/meetings/{meeting}/notes"


async def _upload(
    c: Ctx,
    name: str,
    data: bytes,
    ctype: str = "application/octet-stream",
    headers: dict[str, str] | None = None,
    meeting: str = "kickoff",
    **fields: str,
) -> httpx.Response:
    form = {"author_organisation": "p1", **fields}
    return await c.client.post(
        _url(c, meeting), files={"file": (name, data, ctype)}, data=form, headers=headers
    )


async def _note(c: Ctx, note_id: str) -> dict[str, Any]:
    async with c.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT * FROM notes WHERE id = %s", (note_id,))
        row = await cur.fetchone()
    assert row is not None
    return row


async def test_docx_upload_becomes_structured_note_and_original_downloads(ctx: Ctx) -> None:
    data = docx_bytes("Visit to Växa", ["We saw how they match firms."], ITEMS, language="sv")
    r = await _upload(ctx, "besök.docx", data, DOCX, client_key="docx-1")
    assert r.status_code == 201, r.text
    note_id = r.json()["note_id"]
    note = await _note(ctx, note_id)
    assert note["format"] == "markdown" and note["language"] == "sv"
    assert note["text"].startswith("# Visit to Växa\n\nWe saw how they match firms.\n\n- ")
    assert "- Share the onboarding template" in note["text"]

    r = await ctx.client.get(f"/v1/notes/{note_id}/original")
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-type"] == DOCX
    assert r.headers["content-disposition"].startswith("attachment;")
    assert "filename*=UTF-8''bes%C3%B6k.docx" in r.headers["content-disposition"]
    assert r.headers["x-content-type-options"] == "nosniff"

    # same key again: the same note (200), still one stored file
    r = await _upload(ctx, "besök.docx", data, DOCX, client_key="docx-1")
    assert r.status_code == 200 and r.json() == {"note_id": note_id, "duplicate": True}
    # the same file for another partner: a second note, the bytes stored once
    r = await _upload(ctx, "copy.docx", data, DOCX, author_organisation="p2")
    assert r.status_code == 201
    async with ctx.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT count(DISTINCT o.note_id) AS links, count(DISTINCT b.sha256) AS blobs"
            " FROM note_originals o JOIN document_blobs b USING (sha256) WHERE b.data = %s",
            (data,),
        )
        assert await cur.fetchone() == {"links": 2, "blobs": 1}


@pytest.mark.parametrize(
    ("name", "data", "fmt", "expect"),
    [
        ("n.odt", odt_bytes("Wizyta", ["Dobra wizyta w Łodzi."], ITEMS), "odt", "# Wizyta"),
        ("n.pdf", pdf_bytes([["Visit notes", "• Matchmaking works well"]]), "pdf", "- Match"),
        ("n.md", b"## Heading\n\n* point one here\n", "markdown", "## Heading\n\n- point one"),
        ("n.txt", "Plain words from Umeå.".encode(), "text", "Plain words from Umeå."),
        ("n.html", b"<h1>Title</h1><ul><li>one item here</li></ul>", "html", "# Title\n\n- one"),
        ("n.eml", eml_bytes("Minutes", "We met.\n\n- first item here"), "eml", "# Minutes"),
    ],
)
async def test_every_format_is_a_note(
    ctx: Ctx, name: str, data: bytes, fmt: str, expect: str
) -> None:
    r = await _upload(ctx, name, data, language="en")
    assert r.status_code == 201, r.text
    note_id = r.json()["note_id"]
    assert expect in (await _note(ctx, note_id))["text"]
    async with ctx.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT b.format FROM note_originals o JOIN document_blobs b USING (sha256)"
            " WHERE o.note_id = %s",
            (note_id,),
        )
        assert await cur.fetchone() == {"format": fmt}


async def test_language_comes_from_the_text_when_not_given(ctx: Ctx) -> None:
    text = "Vi såg hur klustret matchar företag med forskare, och det fungerade mycket bra."
    r = await _upload(ctx, "n.txt", text.encode())
    assert r.status_code == 201, r.text
    assert (await _note(ctx, r.json()["note_id"]))["language"] == "sv"


@pytest.mark.parametrize(
    ("name", "data", "status", "words"),
    [
        ("secret.pdf", encrypted_pdf_bytes(["Confidential notes."]), 422, "encrypted"),
        ("scan.pdf", pdf_bytes([[], []]), 422, "scanned PDF: no text layer"),
        ("long.pdf", pdf_bytes([["page"]] * 6), 413, "6 pages"),
        ("big.txt", b"word " * 70_000, 413, "larger than 300000 bytes"),
        ("fake.docx", b"just some text", 415, "content is text"),
        ("fake.pdf", docx_bytes("T", ["p"], []), 415, "content is docx"),
        ("photo.png", b"\x89PNG\r\n\x1a\n", 415, ".png files are not supported"),
        ("nul.txt", b"a\x00b", 415, "binary data"),
        ("latin1.txt", "Växa".encode("latin-1"), 422, "not valid UTF-8"),
        ("broken.pdf", b"%PDF-1.4 nothing else", 422, "cannot be read"),
        ("empty.md", b"   \n\n ", 422, "empty"),
        ("bell.md", b"# Notes\n\nA bell \x07 here.", 422, "control character U+0007"),
    ],
)
async def test_bad_files_are_clear_4xx(
    ctx: Ctx, name: str, data: bytes, status: int, words: str
) -> None:
    r = await _upload(ctx, name, data, language="en")
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert words in r.json()["detail"]


async def test_form_problems_and_workflow_refusals(ctx: Ctx) -> None:
    r = await ctx.client.post(
        _url(ctx), data={"author_organisation": "p1"}, files={"x": ("a", b"")}
    )
    assert r.status_code == 422 and "file field" in r.json()["detail"]
    r = await ctx.client.post(
        _url(ctx), files={"file": ("n.txt", b"Some words here.", "text/plain")}
    )
    assert r.status_code == 422 and "author_organisation" in r.json()["detail"]
    # the meeting not held yet: the workflow's own refusal, as for a JSON note
    r = await _upload(ctx, "n.txt", b"Notes before the meeting.", meeting="later", language="en")
    assert r.status_code == 409 and "not been held" in r.json()["detail"]
    async with ctx.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT count(*) AS n FROM document_blobs WHERE data = %s",
            (b"Notes before the meeting.",),
        )
        assert await cur.fetchone() == {"n": 0}  # a refused upload leaves no bytes behind


async def test_partner_speaks_only_for_itself_and_download_access(ctx: Ctx) -> None:
    c = ctx
    partner = key_headers(c.database_url, "partner", [c.programme_id], organisation="p3")
    r = await _upload(c, "n.txt", b"Notes of someone else.", headers=partner, language="en")
    assert r.status_code == 403, r.text
    r = await _upload(
        c, "n.txt", b"Our own notes, p3.", headers=partner, language="en", author_organisation="p3"
    )
    assert r.status_code == 201, r.text
    note_id = r.json()["note_id"]

    r = await c.client.get(f"/v1/notes/{note_id}/original", headers=partner)
    assert r.status_code == 200 and r.content == b"Our own notes, p3."
    # another partner of the programme reads no raw note of p3, originals included
    other = key_headers(c.database_url, "partner", [c.programme_id], organisation="p4")
    r = await c.client.get(f"/v1/notes/{note_id}/original", headers=other)
    assert r.status_code == 404 and b"Our own notes" not in r.content

    analyst = key_headers(c.database_url, "analyst", [c.programme_id])
    r = await c.client.get(f"/v1/notes/{note_id}/original", headers=analyst)
    assert r.status_code == 200 and r.content == b"Our own notes, p3."
    outsider = key_headers(c.database_url, "manager", ["another-programme"])
    r = await c.client.get(f"/v1/notes/{note_id}/original", headers=outsider)
    assert r.status_code in (403, 404)
    assert b"Our own notes" not in r.content
    assert (await c.client.get("/v1/notes/no-such-note/original")).status_code == 404

    # a JSON note has no original
    r = await c.client.post(
        _url(c), json={"author_organisation": "p4", "language": "en", "text": "Plain JSON note."}
    )
    assert r.status_code == 201
    r = await c.client.get(f"/v1/notes/{r.json()['note_id']}/original")
    assert r.status_code == 404 and "not uploaded as a file" in r.json()["detail"]
