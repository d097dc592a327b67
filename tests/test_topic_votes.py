"""Issue 13, topic voting: the manager proposes topics for a meeting, each
partner organisation votes once (and may change its vote until the
preparation pack goes out), the manager sees the counts, and the winners
become the meeting's focus topics, which the peers' preparation pack e-mail
lists. Real PostgreSQL, the real API app, a real SMTP server for the mail."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import httpx
import pytest_asyncio
from auth_helpers import admin_headers, api_client, key_headers
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from activities.mail import MailActivities
from api.main import create_app
from peerlearn import eventstore, projections
from peerlearn.events import EventType
from peerlearn.mailcatcher import MailCatcher
from peerlearn.settings import Settings
from service.ports import free_port
from workflows.types import workflow_id_for

T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
PARTNERS = ("vaxa", "lodz", "graz")
BALLOT = ["Energy audits for SMEs", "Green public procurement", "Circular food chains"]


@dataclass
class Ctx:
    client: httpx.AsyncClient
    pool: AsyncConnectionPool
    database_url: str


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ctx(
    temporal_env: WorkflowEnvironment, pool: AsyncConnectionPool, database_url: str
) -> AsyncIterator[Ctx]:
    settings = Settings(
        database_url=database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        load_demo=False,
    )
    async with api_client(create_app(settings), admin_headers(database_url)) as client:
        yield Ctx(client, pool, database_url)


async def _setup(c: Ctx) -> tuple[str, str]:
    pid = "p-" + uuid.uuid4().hex[:8]
    body = {
        "id": pid,
        "name": "Green peers",
        "time_zone": "Europe/Stockholm",
        "partners": [
            {"id": "vaxa", "name": "Växa", "country": "SE", "contacts": [
                {"name": "Axel Ek", "email": "axel@vaxa.se", "language": "en",
                 "role": "host_contact"}]},
            {"id": "lodz", "name": "Łódź", "country": "PL", "contacts": [
                {"name": "Bea Nowak", "email": "bea@lodz.pl", "language": "pl",
                 "role": "participant"}]},
            {"id": "graz", "name": "Graz", "country": "AT"},
        ],
    }  # fmt: skip
    r = await c.client.post("/v1/programmes", json=body)
    assert r.status_code == 201, r.text
    cid = "c-" + uuid.uuid4().hex[:8]
    start = T0 + timedelta(days=20)
    await eventstore.append_event(
        c.pool,
        stream_id=cid,
        type=EventType.CYCLE_STARTED,
        payload={
            "programme_id": pid, "workflow_id": workflow_id_for(cid), "title": "2031",
            "time_zone": "Europe/Stockholm", "partners": list(PARTNERS),
            "ends_at": (T0 + timedelta(days=100)).isoformat(), "policies": {},
            "meetings": [{
                "meeting_id": "visit-1", "kind": "site_visit", "title": "visit-1",
                "host": "vaxa", "format": "on_site", "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=6)).isoformat(),
                "topics": ["Regional energy agencies"], "target_groups": [], "participants": [],
            }],
            "phase": "kickoff",
        },
        idempotency_key=f"{cid}:1",
        occurred_at=datetime.now(UTC),
    )  # fmt: skip
    return pid, cid


def _partner(c: Ctx, pid: str, org: str) -> dict[str, str]:
    return key_headers(c.database_url, "partner", [pid], organisation=org)


async def _pack_sent(c: Ctx, cid: str) -> None:
    start = T0 + timedelta(days=20)
    await eventstore.append_event(
        c.pool, stream_id=cid, type=EventType.PREPARATION_PACK_SENT,
        payload={"meeting_id": "visit-1", "title": "visit-1", "starts_at": start.isoformat(),
                 "phase": "meetings"},
        idempotency_key=f"{cid}:pack", occurred_at=datetime.now(UTC),
    )  # fmt: skip


async def test_vote_count_and_change_until_the_pack(ctx: Ctx) -> None:
    pid, cid = await _setup(ctx)
    url = f"/v1/cycles/{cid}/meetings/visit-1/topics"
    assert (await ctx.client.get(url)).status_code == 404  # nothing proposed yet
    manager = key_headers(ctx.database_url, "manager", [pid])
    vaxa, lodz, graz = (_partner(ctx, pid, o) for o in PARTNERS)

    # only managers propose; a blank or repeated topic is a 422
    r = await ctx.client.post(url, json={"topics": BALLOT}, headers=vaxa)
    assert r.status_code == 403
    r = await ctx.client.post(url, json={"topics": ["a", " A "]}, headers=manager)
    assert r.status_code == 422
    r = await ctx.client.post(url, json={"topics": BALLOT}, headers=manager)
    assert r.status_code == 201, r.text
    assert [t["topic"] for t in r.json()["topics"]] == BALLOT and r.json()["open"] is True

    # one vote per organisation; a partner key speaks only for its own
    votes = f"{url}/votes"
    assert (await ctx.client.post(votes, json={"topic": BALLOT[0]}, headers=vaxa)).is_success
    assert (await ctx.client.post(votes, json={"topic": BALLOT[1]}, headers=lodz)).is_success
    r = await ctx.client.post(votes, json={"topic": BALLOT[1], "organisation": "vaxa"},
                              headers=graz)  # fmt: skip
    assert r.status_code == 200 and r.json()["my_vote"] == BALLOT[1]  # graz's own vote
    r = await ctx.client.post(votes, json={"topic": "Tourism"}, headers=lodz)
    assert r.status_code == 422  # not on the ballot
    analyst = key_headers(ctx.database_url, "analyst", [pid])
    assert (
        await ctx.client.post(votes, json={"topic": BALLOT[0]}, headers=analyst)
    ).status_code == 403

    # lodz changes its mind (case and spacing of the ballot's topic do not matter)
    r = await ctx.client.post(votes, json={"topic": " energy audits  for smes"}, headers=lodz)
    assert r.status_code == 200 and r.json()["my_vote"] == BALLOT[0]
    # partners see the ballot and their own vote, not the counts
    r = await ctx.client.get(url, headers=lodz)
    assert r.json()["voters"] is None and {t["votes"] for t in r.json()["topics"]} == {None}
    # the manager sees the counts
    r = await ctx.client.get(url, headers=manager)
    assert r.json()["voters"] == 3
    assert {t["topic"]: t["votes"] for t in r.json()["topics"]} == {
        BALLOT[0]: 2,
        BALLOT[1]: 1,
        BALLOT[2]: 0,
    }
    assert r.json()["focus_topics"] == []

    port = free_port()
    settings = Settings(database_url=ctx.database_url, smtp_host="127.0.0.1", smtp_port=port)
    with MailCatcher(ctx.database_url, port=port):
        await _pack_sent(ctx, cid)  # the pack closes the vote: the winner becomes the focus
        await MailActivities(ctx.pool, settings).deliver_mail(cid)
    r = await ctx.client.get(url, headers=manager)
    assert r.json()["focus_topics"] == [BALLOT[0]] and r.json()["focus_source"] == "votes"
    assert r.json()["open"] is False
    r = await ctx.client.post(votes, json={"topic": BALLOT[2]}, headers=graz)
    assert r.status_code == 409  # too late to change
    assert (await ctx.client.post(url, json={"topics": BALLOT}, headers=manager)).status_code == 409

    # the peers' preparation pack lists the voted focus topic before the planned one
    async with ctx.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT raw FROM caught_mail ORDER BY id")
        msgs = [message_from_bytes(bytes(x["raw"]), policy=default_policy)
                for x in await cur.fetchall()]  # fmt: skip
    (pack,) = [
        m for m in msgs
        if m["X-Peerlearn-Kind"] == "preparation_pack" and "axel@vaxa.se" in m["To"]
        and m["X-Peerlearn-Outbox-Id"].startswith(cid + ":")
    ]  # fmt: skip
    part = pack.get_body(("plain",))
    assert part is not None
    body = part.get_content().replace("\r\n", "\n")
    assert f"Topics: {BALLOT[0]}, Regional energy agencies" in body

    # a projection like the rest: a rebuild lands on the same rows
    async with ctx.pool.connection() as conn:
        before = await projections.snapshot(conn)
    await projections.arebuild_projections(ctx.database_url)
    async with ctx.pool.connection() as conn:
        after = await projections.snapshot(conn)
    for t in ("meeting_topic_proposals", "topic_votes", "meeting_focus_topics"):
        assert after[t] == before[t] and after[t], t


async def test_manager_closes_the_vote_with_a_tie_and_reballot_drops_votes(ctx: Ctx) -> None:
    pid, cid = await _setup(ctx)
    url = f"/v1/cycles/{cid}/meetings/visit-1/topics"
    manager = key_headers(ctx.database_url, "manager", [pid])
    r = await ctx.client.post(url, json={"topics": BALLOT}, headers=manager)
    assert r.status_code == 201
    r = await ctx.client.post(f"{url}/focus", json={}, headers=manager)
    assert r.status_code == 422  # no votes, no winner
    for org, topic in (("vaxa", BALLOT[2]), ("lodz", BALLOT[1]), ("graz", BALLOT[0])):
        r = await ctx.client.post(f"{url}/votes", json={"topic": topic, "organisation": org},
                                  headers=manager)  # fmt: skip
        assert r.status_code == 200, r.text
    # a new ballot without BALLOT[0]: graz's vote for it lapses
    r = await ctx.client.post(url, json={"topics": BALLOT[1:]}, headers=manager)
    assert r.status_code == 201 and r.json()["voters"] == 2
    # a tie: both winners, in ballot order
    r = await ctx.client.post(f"{url}/focus", json={}, headers=manager)
    assert r.status_code == 200
    assert r.json()["focus_topics"] == [BALLOT[1], BALLOT[2]]
    assert r.json()["focus_source"] == "manager"
    # the pack does not override the manager's choice
    await _pack_sent(ctx, cid)
    r = await ctx.client.get(url, headers=manager)
    assert r.json()["focus_topics"] == [BALLOT[1], BALLOT[2]] and r.json()["open"] is False
