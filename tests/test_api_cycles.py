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
import pytest
import pytest_asyncio
from auth_helpers import admin_headers, api_client
from cycle_support import cycle_worker, event_types
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from peerlearn import eventstore, projections
from peerlearn.events import EventType
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


# ---- the manager's flow, one behaviour per test ------------------------------------------
#
# These share one API app whose task queue has a worker running for the whole
# module (``flow``); each test starts its own cycle (``started``), so a failure
# names one behaviour and no test depends on another's leftovers.

FAR = timedelta(days=10)


class Flow:
    client: httpx.AsyncClient
    c: Ctx
    pid: str


class Started:
    cid: str
    now: datetime
    body: dict[str, Any]


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def flow(ctx: Ctx) -> AsyncIterator[Flow]:
    f = Flow()
    f.c = ctx
    tq = ctx.tq + "-flow"
    settings = Settings(
        database_url=ctx.database_url,
        temporal_address=ctx.env.client.service_client.config.target_host,
        task_queue=tq,
        load_demo=False,
    )
    async with (
        api_client(create_app(settings), admin_headers(ctx.database_url)) as client,
        cycle_worker(ctx.env.client, ctx.pool, tq),
    ):
        f.client = client
        f.pid = await _programme(ctx)
        yield f


def _cycle_body(pid: str, now: datetime, cid: str | None = None) -> dict[str, Any]:
    return {
        "cycle_id": cid or "http-" + uuid.uuid4().hex[:6],
        "programme_id": pid,
        "title": "HTTP flow",
        "meetings": _schedule(now, FAR),
        "policies": {"prep_pack_lead_days": 1},
    }


@pytest_asyncio.fixture(loop_scope="session")
async def started(flow: Flow) -> Started:
    """A running cycle: kickoff in 10 days, visit-1 in 20, visit-2 in 30."""
    s = Started()
    s.now = datetime.now(UTC)
    s.body = _cycle_body(flow.pid, s.now)
    s.cid = s.body["cycle_id"]
    r = await flow.client.post("/v1/cycles", json=s.body)
    assert r.status_code == 201, r.text
    await _wait_for(lambda: _has_row(flow.c, s.cid))
    await _wait_for(lambda: _settled(flow, s.cid))
    return s


async def _settled(flow: Flow, cid: str) -> bool:
    """Everything due at once (e.g. self-assessment requests) is in the log,
    so a test counting events sees only its own."""
    st = (await flow.client.get(f"/v1/cycles/{cid}")).json()
    nxt = st.get("next_deadline")
    return (
        st.get("source") == "workflow"
        and st["events"] == await _count(flow.c, cid)
        and nxt is not None
        and datetime.fromisoformat(nxt["at"]["utc"]) > datetime.now(UTC)
    )


@pytest_asyncio.fixture(loop_scope="session")
async def held(flow: Flow, started: Started) -> Started:
    """``started`` with its kickoff marked held, so it takes notes."""
    r = await flow.client.post(f"/v1/cycles/{started.cid}/meetings/kickoff/held", json={})
    assert r.status_code == 202, r.text
    await _wait_for(lambda: _meeting_state(flow.c, started.cid, "kickoff", "held"))
    await _wait_for(lambda: _settled(flow, started.cid))
    return started


async def _post_note(
    flow: Flow, cid: str, note: dict[str, Any], key: str | None = None
) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return await flow.client.post(
        f"/v1/cycles/{cid}/meetings/kickoff/notes", json=note, headers=headers
    )


def _bad_schedules(now: datetime) -> list[tuple[list[dict[str, Any]], str]]:
    return [
        ([{"kind": "kickoff", "starts_at": _iso(now - timedelta(days=1))}], "in the past"),
        ([{"kind": "site_visit", "host": "nobody", "starts_at": _iso(now + FAR)}], "not a partner"),
        (
            [
                {"kind": "webinar", "starts_at": _iso(now + FAR), "duration_minutes": 120},
                {"kind": "webinar", "starts_at": _iso(now + FAR + timedelta(minutes=30))},
            ],
            "overlaps",
        ),
        ([], "meetings"),
    ]


async def test_an_invalid_schedule_is_422_problem_before_any_workflow(flow: Flow) -> None:
    now = datetime.now(UTC)
    for meetings, reason in _bad_schedules(now):
        body = {**_cycle_body(flow.pid, now), "meetings": meetings}
        r = await flow.client.post("/v1/cycles", json=body)
        assert r.status_code == 422 and reason in r.json()["detail"], r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert not await _has_row(flow.c, body["cycle_id"])


async def test_start_answers_201_and_the_same_cycle_id_again_409(flow: Flow) -> None:
    body = _cycle_body(flow.pid, datetime.now(UTC))
    cid = body["cycle_id"]
    r = await flow.client.post("/v1/cycles", json=body)
    assert r.status_code == 201, r.text
    assert r.json() == {"cycle_id": cid, "workflow_id": workflow_id_for(cid)}
    r = await flow.client.post("/v1/cycles", json=body)
    assert r.status_code == 409, r.text


async def test_moving_a_meeting_answers_with_its_event(flow: Flow, started: Started) -> None:
    r = await flow.client.post(
        f"/v1/cycles/{started.cid}/meetings/visit-2/move",
        json={"starts_at": _iso(started.now + FAR * 5)},
    )
    assert r.status_code == 200 and r.json()["event_type"] == "MeetingMoved", r.text
    assert (await event_types(flow.c.pool, started.cid))[-1] == "MeetingMoved"


REFUSALS = [
    # (name, url tail, payload builder, status, reason)
    (
        "move-into-the-past",
        "visit-1/move",
        lambda now: {"starts_at": _iso(now - timedelta(hours=1))},
        409,
        "not in the future",
    ),
    ("host-not-a-partner", "visit-1/host", lambda now: {"host": "stranger"}, 409, "not a partner"),
    (
        "move-onto-another-meeting",
        "visit-1/move",
        lambda now: {"starts_at": _iso(now + FAR * 3)},
        409,
        "overlaps",
    ),
    (
        "move-after-the-cycle-ends",
        "visit-1/move",
        lambda now: {"starts_at": _iso(now + FAR * 50)},
        409,
        "after the cycle ends",
    ),
    ("cancel-unknown-meeting", "ghost/cancel", lambda now: {"reason": "x"}, 404, "ghost"),
    (
        "notes-before-the-meeting-is-held",
        "visit-1/notes",
        lambda now: {"author_organisation": "vaxa", "language": "en", "text": "too early"},
        409,
        "not been held",
    ),
]


@pytest.mark.parametrize(
    ("tail", "payload", "code", "reason"),
    [r[1:] for r in REFUSALS],
    ids=[r[0] for r in REFUSALS],
)
async def test_a_refused_change_gives_the_reason_and_writes_no_event(
    flow: Flow,
    started: Started,
    tail: str,
    payload: Any,
    code: int,
    reason: str,
) -> None:
    before = await _count(flow.c, started.cid)
    r = await flow.client.post(
        f"/v1/cycles/{started.cid}/meetings/{tail}", json=payload(started.now)
    )
    assert r.status_code == code and reason in r.json()["detail"], r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert await _count(flow.c, started.cid) == before


async def test_a_note_sent_twice_with_one_key_is_stored_once(flow: Flow, held: Started) -> None:
    note = {
        "author_organisation": "vaxa",
        "language": "sv",
        "text": "Bra besök.\nAction: dela mallen",
    }
    r1 = await _post_note(flow, held.cid, note, key="k-1")
    r2 = await _post_note(flow, held.cid, note, key="k-1")
    assert (r1.status_code, r2.status_code) == (201, 200), (r1.text, r2.text)
    assert r1.json()["note_id"] == r2.json()["note_id"] and r2.json()["duplicate"]
    assert (await event_types(flow.c.pool, held.cid)).count("NotesSubmitted") == 1


async def test_a_markdown_body_is_stored_as_a_markdown_note_and_mined(
    flow: Flow, held: Started
) -> None:
    r = await flow.client.post(
        f"/v1/cycles/{held.cid}/meetings/kickoff/notes?author_organisation=lodz&language=pl",
        content="## Notatki\n- Dobre praktyki",
        headers={"Content-Type": "text/markdown"},
    )
    assert r.status_code == 201, r.text
    notes = (await flow.client.get(f"/v1/cycles/{held.cid}/notes")).json()["items"]
    assert [n["format"] for n in notes] == ["markdown"]

    async def mined() -> bool:  # theme assignment runs after the answer
        return "ThemesUpdated" in await event_types(flow.c.pool, held.cid)

    await _wait_for(mined)


async def test_a_held_meeting_no_longer_moves(flow: Flow, held: Started) -> None:
    before = await _count(flow.c, held.cid)
    r = await flow.client.post(
        f"/v1/cycles/{held.cid}/meetings/kickoff/move", json={"starts_at": _iso(held.now + FAR * 3)}
    )
    assert r.status_code == 409 and "already held" in r.json()["detail"]
    assert await _count(flow.c, held.cid) == before


async def test_status_shows_meeting_states_note_counts_and_local_times(
    flow: Flow, held: Started
) -> None:
    cid = held.cid
    r = await _post_note(flow, cid, {"author_organisation": "vaxa", "language": "en", "text": "ok"})
    assert r.status_code == 201, r.text
    r = await flow.client.post(f"/v1/cycles/{cid}/meetings/visit-1/cancel", json={"reason": "ill"})
    assert r.status_code == 200, r.text
    st = (await flow.client.get(f"/v1/cycles/{cid}")).json()
    assert st["source"] == "workflow" and st["status"] == "running"
    states = {m["meeting_id"]: m["state"] for m in st["meetings"]}
    assert states == {"kickoff": "held", "visit-1": "cancelled", "visit-2": "scheduled"}
    assert st["note_counts"]["kickoff"] == 1
    assert st["next_deadline"]["action"] in ("reminder", "notes_deadline", "preparation_pack")
    assert st["meetings"][0]["starts_at"]["local"].endswith(("+01:00", "+02:00"))  # Warsaw


async def test_the_list_filters_by_programme_and_status_a_page_at_a_time(ctx: Ctx) -> None:
    pid = await _programme(ctx)
    now = datetime.now(UTC)
    async with cycle_worker(ctx.env.client, ctx.pool, ctx.tq):
        cids = []
        for _ in range(2):
            r = await ctx.client.post("/v1/cycles", json=_cycle_body(pid, now))
            assert r.status_code == 201, r.text
            cids.append(r.json()["cycle_id"])
        for cid in cids:
            await _wait_for(lambda cid=cid: _has_row(ctx, cid))
        page = (await ctx.client.get("/v1/cycles", params={"programme_id": pid, "limit": 1})).json()
        assert [x["id"] for x in page["items"]] == [min(cids)] and page["next_cursor"]
        page2 = (
            await ctx.client.get(
                "/v1/cycles",
                params={"programme_id": pid, "limit": 1, "cursor": page["next_cursor"]},
            )
        ).json()
        assert [x["id"] for x in page2["items"]] == [max(cids)] and page2["next_cursor"] is None
        r = await ctx.client.get("/v1/cycles", params={"status": "running", "limit": 1})
        assert r.status_code == 200 and len(r.json()["items"]) == 1
        for cid in cids:
            r = await ctx.client.post(f"/v1/cycles/{cid}/cancel", json={"reason": "done"})
            assert r.status_code == 202


async def test_a_cancelled_cycle_refuses_changes_and_its_log_ends_with_the_cancel(
    ctx: Ctx,
) -> None:
    """Cancel with a worker, then read status with none: the read model answers."""
    c = ctx
    pid = await _programme(c)
    now = datetime.now(UTC)
    async with cycle_worker(c.env.client, c.pool, c.tq):
        r = await c.client.post("/v1/cycles", json=_cycle_body(pid, now))
        assert r.status_code == 201, r.text
        cid = r.json()["cycle_id"]
        await _wait_for(lambda: _has_row(c, cid))
        r = await c.client.post(f"/v1/cycles/{cid}/cancel", json={"reason": "funding ended"})
        assert r.status_code == 202
        h = c.env.client.get_workflow_handle(workflow_id_for(cid), result_type=CycleResult)
        assert (await h.result()).status == "cancelled"
        before = await _count(c, cid)
        r = await c.client.post(
            f"/v1/cycles/{cid}/meetings/visit-2/move", json={"starts_at": _iso(now + FAR * 4)}
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
        live = await projections.snapshot(conn)
    assert live["cycles"] and live["notes"] and live["outbox"] and live["reports"]
    counts = await projections.arebuild_projections(ctx.database_url)
    async with ctx.pool.connection() as conn:
        rebuilt = await projections.snapshot(conn)
    assert counts["cycles"] == len(live["cycles"])
    for table in projections.PROJECTION_TABLES:
        assert rebuilt[table] == live[table], table


# ---- crafted input never gives 5xx (issue 10) ----------------------------------------------


def _problem(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    for w in words:
        assert w in r.json()["detail"], (w, r.text)


NOTE_BODIES = [
    # (name, content type or None, body, words the problem must name)
    ("text-plain-nul", "text/plain", b"a\x00b", ["NUL", "position 1"]),
    ("markdown-escape", "text/markdown", b"## ok\n\x1b[31mred", ["U+001B", "line 2"]),
    ("json-without-type-nul", None, b'{"author_organisation": "vaxa", "language": "en",'
     b' "text": "a\\u0000b"}', ["NUL"]),
    ("json-without-type-surrogate", None, b'{"author_organisation": "vaxa", "language": "en",'
     b' "text": "x\\ud800"}', ["surrogate"]),
    ("json-bell", "application/json", b'{"author_organisation": "vaxa", "language": "en",'
     b' "text": "ding\\u0007"}', ["U+0007", "position 4"]),
    ("json-nul", "application/json", b'{"author_organisation": "vaxa", "language": "en",'
     b' "text": "a\\u0000b"}', ["NUL"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("ctype", "body", "words"), [b[1:] for b in NOTE_BODIES], ids=[b[0] for b in NOTE_BODIES]
)
async def test_a_note_with_control_characters_is_422_in_every_body_format(
    flow: Flow, held: Started, ctype: str | None, body: bytes, words: list[str]
) -> None:
    before = await _count(flow.c, held.cid)
    url = f"/v1/cycles/{held.cid}/meetings/kickoff/notes?author_organisation=vaxa&language=en"
    # httpx would add a Content-Type for content=; a raw request sends none
    req = flow.client.build_request("POST", url, content=body)
    if ctype is None:
        req.headers.pop("content-type", None)
    else:
        req.headers["content-type"] = ctype
    r = await flow.client.send(req)
    _problem(r, 422, *words)
    assert await _count(flow.c, held.cid) == before
    ok = await _post_note(flow, held.cid, {"author_organisation": "vaxa", "language": "en",
                                           "text": "Tabs\tand\r\nnewlines are fine."})  # fmt: skip
    assert ok.status_code == 201, ok.text


def _crafted_cycles(now: datetime) -> list[tuple[str, dict[str, Any]]]:
    meeting = {"kind": "kickoff", "starts_at": _iso(now + FAR)}
    many = [0.001 * i for i in range(1, 2000)]
    in_50_years = _iso(now + timedelta(days=50 * 366))
    return [
        ("notes-due-1e10", {"policies": {"notes_due_after_days": 1e10}}),
        ("reminder-1e300", {"policies": {"reminder_offsets_days": [1e300]}}),
        ("reminder-negative", {"policies": {"reminder_offsets_days": [-1]}}),
        ("reminders-thousands", {"policies": {"reminder_offsets_days": many}}),
        ("reminder-twice", {"policies": {"reminder_offsets_days": [1, 1]}}),
        ("follow-up-1e10", {"policies": {"follow_up_after_days": 1e10}}),
        ("meeting-year-9999", {"meetings": [{**meeting, "starts_at": "9999-06-01T10:00:00Z"}]}),
        ("meeting-in-50-years", {"meetings": [{**meeting, "starts_at": in_50_years}]}),
        ("ends-at-9999", {"ends_at": "9999-12-31T23:59:59Z"}),
        ("ends-at-2090", {"ends_at": "2090-01-01T00:00:00Z"}),
    ]  # fmt: skip


@pytest.mark.parametrize("name", [n for n, _ in _crafted_cycles(datetime.now(UTC))])
async def test_crafted_cycle_fields_are_422_not_500(flow: Flow, name: str) -> None:
    now = datetime.now(UTC)
    change = dict(_crafted_cycles(now))[name]
    body = {**_cycle_body(flow.pid, now), **change}
    r = await flow.client.post("/v1/cycles", json=body)
    _problem(r, 422)
    assert not await _has_row(flow.c, body["cycle_id"])


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN"])
async def test_non_finite_numbers_are_422(flow: Flow, literal: str) -> None:
    body = json.dumps(_cycle_body(flow.pid, datetime.now(UTC)))
    body = body.replace('"prep_pack_lead_days": 1', f'"notes_due_after_days": {literal}')
    r = await flow.client.post(
        "/v1/cycles", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory", "../../etc/passwd"])
async def test_time_zones_outside_the_iana_list_are_422(flow: Flow, zone: str) -> None:
    r = await flow.client.post(
        "/v1/programmes", json={"name": "x", "time_zone": zone, "partners": PARTNERS}
    )
    _problem(r, 422, "time zone")


async def test_list_filters_and_cursors_we_never_issued_are_4xx(flow: Flow) -> None:
    for params, status in (
        ({"status": "bogus"}, 422),
        ({"phase": "nonsense"}, 422),
        ({"cursor": "AA"}, 400),
        ({"cursor": "W3siYSI6MX1d"}, 400),  # [{"a":1}]
    ):
        r = await flow.client.get("/v1/cycles", params=params)
        _problem(r, status)


async def test_held_at_before_the_cycle_or_in_1970_is_422(flow: Flow, started: Started) -> None:
    url = f"/v1/cycles/{started.cid}/meetings/kickoff/held"
    for held_at in ("1970-01-01T00:00:00Z", _iso(started.now - timedelta(days=2))):
        r = await flow.client.post(url, json={"held_at": held_at})
        _problem(r, 422, "held_at")


async def test_an_idempotency_key_reused_for_another_note_is_409(flow: Flow, held: Started) -> None:
    note = {"author_organisation": "vaxa", "language": "en", "text": "First version."}
    assert (await _post_note(flow, held.cid, note, key="once")).status_code == 201
    assert (await _post_note(flow, held.cid, note, key="once")).status_code == 200
    for change, field in (
        ({"text": "Second version."}, "text"),
        ({"author_organisation": "lodz"}, "author_organisation"),
        ({"language": "sv"}, "language"),
    ):
        r = await _post_note(flow, held.cid, {**note, **change}, key="once")
        _problem(r, 409, "once", field)
    # the same key on another meeting is another note: refused too
    r = await flow.client.post(
        f"/v1/cycles/{held.cid}/meetings/visit-1/notes",
        json=note,
        headers={"Idempotency-Key": "once"},
    )
    _problem(r, 409, "meeting_id")
    assert (await event_types(flow.c.pool, held.cid)).count("NotesSubmitted") == 1


async def test_one_key_sent_twice_at_once_names_one_note(flow: Flow, held: Started) -> None:
    """Two simultaneous requests with one Idempotency-Key: different notes are
    one 201 and one 409 (not a 200 naming the other note); the same note is
    one 201 and one 200 with the same id; a refused note frees its key."""
    first = {"author_organisation": "vaxa", "language": "en", "text": "Alpha version."}
    other = {**first, "text": "Beta version."}
    for _ in range(3):
        key = uuid.uuid4().hex
        a, b = await asyncio.gather(
            _post_note(flow, held.cid, first, key=key), _post_note(flow, held.cid, other, key=key)
        )
        assert sorted([a.status_code, b.status_code]) == [201, 409], (a.text, b.text)
        loser = a if a.status_code == 409 else b
        _problem(loser, 409, key, "text")
    key = uuid.uuid4().hex
    a, b = await asyncio.gather(
        _post_note(flow, held.cid, first, key=key), _post_note(flow, held.cid, first, key=key)
    )
    assert sorted([a.status_code, b.status_code]) == [200, 201], (a.text, b.text)
    assert a.json()["note_id"] == b.json()["note_id"]
    assert (await event_types(flow.c.pool, held.cid)).count("NotesSubmitted") == 4
    # refused (an unknown organisation): the key carries a corrected note after
    key = uuid.uuid4().hex
    r = await _post_note(flow, held.cid, {**first, "author_organisation": "nobody"}, key=key)
    assert r.status_code in (403, 422), r.text
    assert (await _post_note(flow, held.cid, other, key=key)).status_code == 201


async def test_status_of_a_cycle_stored_with_an_extreme_end_is_not_500(flow: Flow) -> None:
    """A cycle row written before dates were bounded (ends_at 9999-12-31, which
    overflows in any zone east of UTC): status still answers, from the read model."""
    cid = "edge-" + uuid.uuid4().hex[:6]
    now = datetime.now(UTC)
    async with flow.c.pool.connection() as conn, conn.transaction():
        await eventstore.append(
            conn,
            stream_id=cid,
            type=EventType.CYCLE_STARTED,
            payload={
                "programme_id": flow.pid,
                "workflow_id": workflow_id_for(cid),
                "title": "Edge",
                "phase": "kickoff",
                "time_zone": "Europe/Warsaw",
                "partners": ["vaxa"],
                "policies": {},
                "ends_at": "9999-12-31T23:59:59+00:00",
                "meetings": [
                    {
                        "meeting_id": "kickoff",
                        "kind": "kickoff",
                        "starts_at": _iso(now + FAR),
                        "ends_at": _iso(now + FAR + timedelta(hours=1)),
                    }
                ],
            },
            idempotency_key=f"{cid}:started",
            occurred_at=now,
        )
    r = await flow.client.get(f"/v1/cycles/{cid}")
    assert r.status_code == 200, r.text
    assert r.json()["source"] == "read_model"
    assert r.json()["ends_at"]["utc"].startswith("9999-12-31")


async def test_a_note_after_the_window_closed_is_accepted_flagged_and_counted(
    flow: Flow,
) -> None:
    now = datetime.now(UTC)
    s = 1 / 86400
    soon = _iso(now + timedelta(seconds=2))
    body = {
        **_cycle_body(flow.pid, now),
        "meetings": [
            {"meeting_id": "kickoff", "kind": "kickoff", "starts_at": soon,
             "duration_minutes": 0.01},
            {"meeting_id": "later", "kind": "webinar", "starts_at": _iso(now + FAR)},
        ],
        "policies": {"notes_due_after_days": 2 * s, "reminder_offsets_days": [1 * s],
                     "prep_pack_lead_days": 0},
    }  # fmt: skip
    r = await flow.client.post("/v1/cycles", json=body)
    assert r.status_code == 201, r.text
    cid = r.json()["cycle_id"]

    async def window_closed() -> bool:
        types = await event_types(flow.c.pool, cid)
        return "NotesOverdue" in types or "NoteWindowClosed" in types

    await _wait_for(window_closed, within=30)
    note = {"author_organisation": "vaxa", "language": "en", "text": "Late but useful."}
    r = await _post_note(flow, cid, note)
    assert r.status_code == 201, r.text
    notes = (await flow.client.get(f"/v1/cycles/{cid}/notes")).json()["items"]
    assert [n["late"] for n in notes] == [True]
    st = (await flow.client.get(f"/v1/cycles/{cid}")).json()
    kickoff = next(m for m in st["meetings"] if m["meeting_id"] == "kickoff")
    assert (kickoff["note_count"], kickoff["late_notes"]) == (1, 1)
    async with flow.c.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT payload FROM events WHERE stream_id = %s AND type = 'NotesSubmitted'", (cid,)
        )
        row = await cur.fetchone()
    assert row is not None and row["payload"]["late"] is True


async def test_unstorable_free_text_in_changes_is_422_and_a_cancel_still_lands(
    flow: Flow, started: Started
) -> None:
    """Every event is appended with unlimited retries, so free text storage
    cannot hold must never reach one: refused by the body checks (also without
    a Content-Type) or the workflow's validators; a cancel's reason (a signal,
    which cannot be refused) is cleaned instead."""
    cid = started.cid
    before = await _count(flow.c, cid)
    req = flow.client.build_request(
        "POST", f"/v1/cycles/{cid}/meetings/visit-1/cancel", content=b'{"reason": "a\\u0000b"}'
    )
    req.headers.pop("content-type", None)
    _problem(await flow.client.send(req), 422, "NUL")
    r = await flow.client.post(f"/v1/cycles/{cid}/pause", json={"reason": "bell\u0007"})
    _problem(r, 422, "reason", "U+0007", "position 4")
    r = await flow.client.post(
        f"/v1/cycles/{cid}/meetings/visit-1/cancel", json={"reason": "esc\u001b[0m"}
    )
    _problem(r, 422, "reason", "U+001B")
    assert await _count(flow.c, cid) == before
    r = await flow.client.post(f"/v1/cycles/{cid}/cancel", json={"reason": "over\u0007 now"})
    assert r.status_code == 202, r.text
    h = flow.c.env.client.get_workflow_handle(workflow_id_for(cid), result_type=CycleResult)
    assert (await h.result()).status == "cancelled"
    events = (await flow.client.get(f"/v1/cycles/{cid}/events")).json()["items"]
    assert events[-1]["type"] == "CycleCancelled"
    assert events[-1]["payload"]["reason"] == "over now"
