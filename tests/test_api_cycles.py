"""The cycle engine over HTTP against a real Temporal dev server and real
PostgreSQL: start, move, notes twice with one key, cancel a meeting, status,
refused changes, a worker killed mid-cycle, webhook delivery, and the
projections rebuild landing on the live tables."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest_asyncio
from auth_helpers import admin_headers, api_client
from cycle_support import cycle_worker, event_types
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from peerlearn import eventstore
from peerlearn.settings import Settings
from workflows.types import CycleResult, workflow_id_for

PARTNERS = [
    {"id": "vaxa", "name": "Växa", "country": "SE", "kind": "cluster"},
    {"id": "lodz", "name": "Łódź", "country": "PL", "kind": "agency"},
    {"id": "tartu", "name": "Tartu", "country": "EE", "kind": "city"},
]


def _iso(dt: datetime) -> str:
    return dt.isoformat()


class Receiver:
    """A real local webhook receiver (http.server in a thread)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append({"headers": dict(self.headers), "body": json.loads(body)})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


class Ctx:
    client: httpx.AsyncClient
    env: WorkflowEnvironment
    pool: AsyncConnectionPool
    tq: str
    receiver: Receiver
    database_url: str


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ctx(
    temporal_env: WorkflowEnvironment, pool: AsyncConnectionPool, database_url: str
) -> AsyncIterator[Ctx]:
    c = Ctx()
    c.env, c.pool, c.database_url = temporal_env, pool, database_url
    c.tq = "cycle-api-" + uuid.uuid4().hex[:6]
    c.receiver = Receiver()
    settings = Settings(
        database_url=database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        task_queue=c.tq,
        load_demo=False,
        webhook_allow_private=True,  # the Receiver listens on 127.0.0.1 over http
        webhook_allow_http=True,
    )
    async with api_client(create_app(settings), admin_headers(database_url)) as client:
        c.client = client
        yield c
    c.receiver.close()


async def _programme(c: Ctx, webhook: bool = False) -> str:
    pid = "prog-" + uuid.uuid4().hex[:6]
    r = await c.client.post(
        "/v1/programmes",
        json={
            "id": pid,
            "name": "Green tech",
            "time_zone": "Europe/Warsaw",
            "partners": PARTNERS,
            "languages": ["en", "sv", "pl"],
            "webhook_url": c.receiver.url if webhook else None,
        },
    )
    assert r.status_code == 201, r.text
    return pid


def _schedule(now: datetime, gap: timedelta, n: int = 3) -> list[dict[str, Any]]:
    hosts = ["vaxa", "lodz", "tartu"]
    dur = 0.01
    out = [
        {
            "meeting_id": "kickoff",
            "kind": "kickoff",
            "format": "online",
            "starts_at": _iso(now + gap),
            "duration_minutes": dur,
        }
    ]
    for i in range(1, n):
        out.append(
            {
                "meeting_id": f"visit-{i}",
                "kind": "site_visit",
                "host": hosts[i % 3],
                "starts_at": _iso(now + gap * (i + 1)),
                "duration_minutes": dur,
            }
        )
    return out


async def _count(c: Ctx, cycle_id: str) -> int:
    return len(await event_types(c.pool, cycle_id))


async def _wait_for(pred: Any, within: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await pred():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_programme_validation(ctx: Ctx) -> None:
    r = await ctx.client.post(
        "/v1/programmes", json={"name": "x", "time_zone": "Mars/Olympus", "partners": PARTNERS}
    )
    assert r.status_code == 422 and "Mars/Olympus" in r.json()["detail"]
    pid = await _programme(ctx)
    r = await ctx.client.post(
        "/v1/programmes",
        json={"id": pid, "name": "again", "time_zone": "UTC", "partners": PARTNERS},
    )
    assert r.status_code == 409
    r = await ctx.client.get(f"/v1/programmes/{pid}")
    assert r.status_code == 200 and r.json()["time_zone"] == "Europe/Warsaw"
    assert (await ctx.client.get("/v1/programmes/nope")).status_code == 404


async def test_http_flow_and_refusals(ctx: Ctx) -> None:
    c = ctx
    pid = await _programme(c)
    now = datetime.now(UTC)
    far = timedelta(days=10)
    cid = "http-" + uuid.uuid4().hex[:6]
    body: dict[str, Any] = {
        "cycle_id": cid,
        "programme_id": pid,
        "title": "HTTP flow",
        "meetings": _schedule(now, far),
        "policies": {"prep_pack_lead_days": 1},
    }

    # invalid schedules: 422 before any workflow starts
    bad = [
        ([{"kind": "kickoff", "starts_at": _iso(now - timedelta(days=1))}], "in the past"),
        ([{"kind": "site_visit", "host": "nobody", "starts_at": _iso(now + far)}], "not a partner"),
        (
            [
                {"kind": "webinar", "starts_at": _iso(now + far), "duration_minutes": 120},
                {"kind": "webinar", "starts_at": _iso(now + far + timedelta(minutes=30))},
            ],
            "overlaps",
        ),
        ([], "meetings"),
    ]
    for meetings, reason in bad:
        r = await c.client.post("/v1/cycles", json={**body, "meetings": meetings})
        assert r.status_code == 422 and reason in r.json()["detail"], r.text
        assert r.headers["content-type"].startswith("application/problem+json")

    async with cycle_worker(c.env.client, c.pool, c.tq):
        r = await c.client.post("/v1/cycles", json=body)
        assert r.status_code == 201, r.text
        assert r.json() == {"cycle_id": cid, "workflow_id": workflow_id_for(cid)}
        r = await c.client.post("/v1/cycles", json=body)
        assert r.status_code == 409
        await _wait_for(lambda: _has_row(c, cid))

        # move a meeting
        r = await c.client.post(
            f"/v1/cycles/{cid}/meetings/visit-2/move", json={"starts_at": _iso(now + far * 5)}
        )
        assert r.status_code == 200 and r.json()["event_type"] == "MeetingMoved", r.text

        # refused changes: 4xx with the reason, and no new event
        before = await _count(c, cid)
        refusals = [
            (
                f"/v1/cycles/{cid}/meetings/visit-1/move",
                {"starts_at": _iso(now - timedelta(hours=1))},
                409,
                "not in the future",
            ),
            (f"/v1/cycles/{cid}/meetings/visit-1/host", {"host": "stranger"}, 409, "not a partner"),
            (
                f"/v1/cycles/{cid}/meetings/visit-1/move",
                {"starts_at": _iso(now + far * 5)},
                409,
                "overlaps",
            ),
            (
                f"/v1/cycles/{cid}/meetings/visit-1/move",
                {"starts_at": _iso(now + far * 50)},
                409,
                "after the cycle ends",
            ),
            (f"/v1/cycles/{cid}/meetings/ghost/cancel", {"reason": "x"}, 404, "ghost"),
            (
                f"/v1/cycles/{cid}/meetings/visit-1/notes",
                {"author_organisation": "vaxa", "language": "en", "text": "too early"},
                409,
                "not been held",
            ),
        ]
        for url, payload, code, reason in refusals:
            r = await c.client.post(url, json=payload)
            assert r.status_code == code and reason in r.json()["detail"], (url, r.text)
        assert await _count(c, cid) == before

        # mark the kickoff held, then notes twice with one key: stored once
        r = await c.client.post(f"/v1/cycles/{cid}/meetings/kickoff/held", json={})
        assert r.status_code == 202, r.text
        await _wait_for(lambda: _meeting_state(c, cid, "kickoff", "held"))
        note = {
            "author_organisation": "vaxa",
            "language": "sv",
            "text": "Bra besök.\nAction: dela mallen",
        }
        r1 = await c.client.post(
            f"/v1/cycles/{cid}/meetings/kickoff/notes",
            json=note,
            headers={"Idempotency-Key": "k-1"},
        )
        r2 = await c.client.post(
            f"/v1/cycles/{cid}/meetings/kickoff/notes",
            json=note,
            headers={"Idempotency-Key": "k-1"},
        )
        assert (r1.status_code, r2.status_code) == (201, 200), (r1.text, r2.text)
        assert r1.json()["note_id"] == r2.json()["note_id"] and r2.json()["duplicate"]
        r3 = await c.client.post(
            f"/v1/cycles/{cid}/meetings/kickoff/notes?author_organisation=lodz&language=pl",
            content="## Notatki\n- Dobre praktyki",
            headers={"Content-Type": "text/markdown"},
        )
        assert r3.status_code == 201, r3.text
        notes = (await c.client.get(f"/v1/cycles/{cid}/notes")).json()["items"]
        assert len(notes) == 2 and {n["format"] for n in notes} == {"text", "markdown"}
        types = await event_types(c.pool, cid)
        assert types.count("NotesSubmitted") == 2

        async def mined() -> bool:  # theme assignment runs after the answer
            return (await event_types(c.pool, cid)).count("ThemesUpdated") == 2

        await _wait_for(mined)

        # a held meeting no longer changes
        before = await _count(c, cid)
        r = await c.client.post(
            f"/v1/cycles/{cid}/meetings/kickoff/move", json={"starts_at": _iso(now + far * 3)}
        )
        assert r.status_code == 409 and "already held" in r.json()["detail"]
        assert await _count(c, cid) == before

        # cancel a meeting, read status (UTC and Warsaw time)
        r = await c.client.post(
            f"/v1/cycles/{cid}/meetings/visit-1/cancel", json={"reason": "host ill"}
        )
        assert r.status_code == 200
        st = (await c.client.get(f"/v1/cycles/{cid}")).json()
        assert st["source"] == "workflow" and st["status"] == "running"
        states = {m["meeting_id"]: m["state"] for m in st["meetings"]}
        assert states == {"kickoff": "held", "visit-1": "cancelled", "visit-2": "scheduled"}
        assert st["note_counts"]["kickoff"] == 2
        assert st["next_deadline"]["action"] in ("reminder", "notes_deadline", "preparation_pack")
        assert st["meetings"][0]["starts_at"]["local"].endswith(("+01:00", "+02:00"))

        # list with filters and cursor pagination
        page = (await c.client.get("/v1/cycles", params={"programme_id": pid, "limit": 1})).json()
        assert [x["id"] for x in page["items"]] == [cid] and page["next_cursor"] is None
        r = await c.client.get("/v1/cycles", params={"status": "running", "limit": 1})
        assert r.status_code == 200 and len(r.json()["items"]) == 1

        # cancel the cycle; later changes are refused with no new event
        r = await c.client.post(f"/v1/cycles/{cid}/cancel", json={"reason": "funding ended"})
        assert r.status_code == 202
        h = c.env.client.get_workflow_handle(workflow_id_for(cid), result_type=CycleResult)
        assert (await h.result()).status == "cancelled"
        before = await _count(c, cid)
        r = await c.client.post(
            f"/v1/cycles/{cid}/meetings/visit-2/move", json={"starts_at": _iso(now + far * 4)}
        )
        assert r.status_code == 409 and "cancelled" in r.json()["detail"]
        assert await _count(c, cid) == before
        events = (await c.client.get(f"/v1/cycles/{cid}/events")).json()["items"]
        assert [e["version"] for e in events] == list(range(1, len(events) + 1))
        assert events[0]["type"] == "CycleStarted" and events[-1]["type"] == "CycleCancelled"
    # no worker: status falls back to the read model
    st = (await c.client.get(f"/v1/cycles/{cid}")).json()
    assert st["source"] == "read_model" and st["status"] == "cancelled"


async def _has_row(c: Ctx, cid: str) -> bool:
    async with c.pool.connection() as conn:
        cur = await conn.execute("SELECT 1 FROM cycles WHERE id = %s", (cid,))
        return await cur.fetchone() is not None


async def _meeting_state(c: Ctx, cid: str, mid: str, state: str) -> bool:
    async with c.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT state FROM meetings WHERE cycle_id = %s AND id = %s", (cid, mid))
        row = await cur.fetchone()
        return row is not None and row["state"] == state


async def test_worker_killed_mid_cycle_and_webhooks(ctx: Ctx) -> None:
    """A compressed cycle (seconds); the worker stops after the first meeting
    and a fresh one finishes it: no missing and no duplicate events."""
    c = ctx
    pid = await _programme(c, webhook=True)
    now = datetime.now(UTC)
    gap = timedelta(seconds=3)
    s = 1 / 86400
    body = {
        "programme_id": pid,
        "title": "Chaos",
        "meetings": _schedule(now, gap),
        "policies": {
            "notes_due_after_days": 2 * s,
            "reminder_offsets_days": [1 * s],
            "prep_pack_lead_days": 1 * s,
            "self_assessment_lead_days": 2 * s,
            "follow_up_after_days": 1 * s,
        },
    }
    async with cycle_worker(c.env.client, c.pool, c.tq):
        r = await c.client.post("/v1/cycles", json=body)
        assert r.status_code == 201, r.text
        cid = r.json()["cycle_id"]
        await _wait_for(lambda: _meeting_state(c, cid, "kickoff", "held"), within=15)
    # the worker is gone; time passes; deadlines are missed while nobody runs
    await asyncio.sleep(2.5)
    async with cycle_worker(c.env.client, c.pool, c.tq):
        h = c.env.client.get_workflow_handle(workflow_id_for(cid), result_type=CycleResult)
        res = await asyncio.wait_for(h.result(), timeout=40)
        assert res.status == "completed"
        await _wait_for(lambda: _all_delivered(c, cid), within=15)
    types = await event_types(c.pool, cid)
    async with c.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT version, idempotency_key FROM events WHERE stream_id = %s ORDER BY version",
            (cid,),
        )
        rows = await cur.fetchall()
    assert [r["version"] for r in rows] == list(range(1, len(rows) + 1))
    assert len({r["idempotency_key"] for r in rows}) == len(rows) == res.events
    assert types.count("MeetingHeld") == 3 and types.count("PreparationPackSent") == 3
    assert types.count("NotesOverdue") == 3 and types.count("CycleCompleted") == 1
    assert types[-3:] == ["WrapUpPublished", "FollowUpDue", "CycleCompleted"]
    got = {d["body"]["id"] for d in c.receiver.received if d["body"]["cycle_id"] == cid}
    async with c.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT id FROM outbox WHERE cycle_id = %s", (cid,))
        assert got == {r["id"] for r in await cur.fetchall()}
    sig = next(d for d in c.receiver.received if d["body"]["cycle_id"] == cid)["headers"]
    assert "Peerlearn-Signature" in sig and sig["Idempotency-Key"]


async def _all_delivered(c: Ctx, cid: str) -> bool:
    async with c.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT count(*) AS n FROM outbox o LEFT JOIN outbox_deliveries d ON d.outbox_id = o.id"
            " WHERE o.cycle_id = %s AND d.delivered_at IS NULL",
            (cid,),
        )
        row = await cur.fetchone()
        return row is not None and row["n"] == 0


async def test_rebuild_equals_live(ctx: Ctx) -> None:
    """Replaying the whole log into fresh tables gives exactly the live read models."""
    async with ctx.pool.connection() as conn:
        live = await eventstore.snapshot(conn)
    assert live["cycles"] and live["notes"] and live["outbox"] and live["reports"]
    counts = await eventstore.arebuild_projections(ctx.database_url)
    async with ctx.pool.connection() as conn:
        rebuilt = await eventstore.snapshot(conn)
    assert counts["cycles"] == len(live["cycles"])
    for table in eventstore.PROJECTION_TABLES:
        assert rebuilt[table] == live[table], table
