"""Issue 13, self-assessment: a programme's questionnaire, the host's answers
through the API (checked per question type, host-only, before the visit), and
the answers in the peers' preparation pack e-mail, caught by a real SMTP server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from typing import Any

import pytest_asyncio
from auth_helpers import key_headers
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from review_support import Ctx, cycle_started, open_ctx
from temporalio.testing import WorkflowEnvironment

from activities.mail import MailActivities
from peerlearn import eventstore, projections
from peerlearn.events import EventType
from peerlearn.mailcatcher import MailCatcher
from peerlearn.settings import Settings
from service.ports import free_port

T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
QUESTIONS: list[dict[str, Any]] = [
    {"id": "support", "text": "How do you support SMEs?", "type": "text"},
    {"id": "maturity", "text": "How mature is your internationalisation?", "type": "scale"},
    {"id": "focus", "text": "Main focus", "type": "choice", "choices": ["energy", "food"]},
]


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ctx(
    temporal_env: WorkflowEnvironment, pool: AsyncConnectionPool, database_url: str
) -> AsyncIterator[Ctx]:
    async with open_ctx(temporal_env, pool, database_url) as c:
        yield c


async def _setup(c: Ctx) -> tuple[str, str]:
    pid = "p-" + uuid.uuid4().hex[:8]
    body = {
        "id": pid,
        "name": "Green peers",
        "time_zone": "Europe/Stockholm",
        "self_assessment_questions": QUESTIONS,
        "partners": [
            {"id": "vaxa", "name": "Växa", "country": "SE", "contacts": [
                {"name": "Axel Ek", "email": "axel@vaxa.se", "language": "sv",
                 "role": "host_contact"}]},
            {"id": "lodz", "name": "Łódź", "country": "PL", "contacts": [
                {"name": "Bea Nowak", "email": "bea@lodz.pl", "language": "pl",
                 "role": "participant"}]},
        ],
    }  # fmt: skip
    r = await c.client.post("/v1/programmes", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["self_assessment_questions"][2]["choices"] == ["energy", "food"]
    cid = "c-" + uuid.uuid4().hex[:8]

    def plan(mid: str, start: datetime, host: str | None) -> dict[str, Any]:
        return {
            "meeting_id": mid, "kind": "site_visit" if host else "webinar", "title": mid,
            "host": host, "format": "on_site" if host else "online",
            "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=6)).isoformat(),
            "topics": [], "target_groups": [], "participants": [],
        }  # fmt: skip

    await eventstore.append_event(
        c.pool,
        stream_id=cid,
        type=EventType.CYCLE_STARTED,
        payload=cycle_started(
            pid, cid, ["vaxa", "lodz"], T0 + timedelta(days=100),
            [plan("web", T0, None), plan("visit-1", T0 + timedelta(days=20), "vaxa")],
            phase="kickoff",
        ),
        idempotency_key=f"{cid}:1",
        occurred_at=datetime.now(UTC),
    )  # fmt: skip
    return pid, cid


ANSWERS = [
    {"question_id": "focus", "value": "energy"},
    {"question_id": "support", "value": "Mentorprogram för SMF, två gånger per år."},
    {"question_id": "maturity", "value": 4},
]


async def test_host_answers_and_peers_read(ctx: Ctx) -> None:
    pid, cid = await _setup(ctx)
    url = f"/v1/cycles/{cid}/meetings/visit-1/self-assessment"
    assert (await ctx.client.get(url)).status_code == 404  # nothing yet
    host = key_headers(ctx.database_url, "partner", [pid], organisation="vaxa")
    r = await ctx.client.put(url, json={"language": "sv", "answers": ANSWERS}, headers=host)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["host"] == "vaxa" and got["language"] == "sv"
    # questionnaire order, each with its question
    assert [a["question_id"] for a in got["answers"]] == ["support", "maturity", "focus"]
    assert got["answers"][1] == {
        "question_id": "maturity", "question": QUESTIONS[1]["text"], "type": "scale", "value": 4,
    }  # fmt: skip
    peer = key_headers(ctx.database_url, "partner", [pid], organisation="lodz")
    assert (await ctx.client.get(url, headers=peer)).json() == got
    # a resubmission replaces the answers; both stay in the log
    r = await ctx.client.put(url, json={"answers": [{"question_id": "maturity", "value": 5}]})
    assert r.status_code == 200 and [a["value"] for a in r.json()["answers"]] == [5]
    async with ctx.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT count(*) AS n FROM events WHERE stream_id = %s AND type = %s",
            (cid, EventType.SELF_ASSESSMENT_SUBMITTED.value),
        )
        row = await cur.fetchone()
    assert row is not None and row["n"] == 2


async def test_refusals(ctx: Ctx) -> None:
    pid, cid = await _setup(ctx)
    url = f"/v1/cycles/{cid}/meetings/visit-1/self-assessment"
    bad = [
        [{"question_id": "maturity", "value": 7}],
        [{"question_id": "maturity", "value": "4"}],
        [{"question_id": "focus", "value": "tourism"}],
        [{"question_id": "nope", "value": "x"}],
        [{"question_id": "support", "value": "   "}],
        [{"question_id": "support", "value": "a"}, {"question_id": "support", "value": "b"}],
    ]
    for answers in bad:
        r = await ctx.client.put(url, json={"answers": answers})
        assert r.status_code == 422, (answers, r.text)
    peer = key_headers(ctx.database_url, "partner", [pid], organisation="lodz")
    assert (await ctx.client.put(url, json={"answers": ANSWERS}, headers=peer)).status_code == 403
    analyst = key_headers(ctx.database_url, "analyst", [pid])
    r = await ctx.client.put(url, json={"answers": ANSWERS}, headers=analyst)
    assert r.status_code == 403
    web = f"/v1/cycles/{cid}/meetings/web/self-assessment"
    assert (await ctx.client.put(web, json={"answers": ANSWERS})).status_code == 409  # no host
    gone = f"/v1/cycles/{cid}/meetings/nope/self-assessment"
    assert (await ctx.client.put(gone, json={"answers": ANSWERS})).status_code == 404
    other = key_headers(ctx.database_url, "manager", ["another-programme"])
    assert (await ctx.client.get(url, headers=other)).status_code in (403, 404)
    await eventstore.append_event(
        ctx.pool,
        stream_id=cid,
        type=EventType.MEETING_HELD,
        payload={"meeting_id": "visit-1", "held_at": T0.isoformat(),
                 "notes_due_at": T0.isoformat(), "phase": "meetings"},
        idempotency_key=f"{cid}:held",
        occurred_at=datetime.now(UTC),
    )  # fmt: skip
    assert (await ctx.client.put(url, json={"answers": ANSWERS})).status_code == 409  # too late


async def test_answers_travel_in_the_preparation_pack(ctx: Ctx) -> None:
    pid, cid = await _setup(ctx)
    port = free_port()
    settings = Settings(database_url=ctx.database_url, smtp_host="127.0.0.1", smtp_port=port)
    acts = MailActivities(ctx.pool, settings)

    async def add(type_: EventType, payload: dict[str, Any]) -> None:
        await eventstore.append_event(
            ctx.pool, stream_id=cid, type=type_, payload={**payload, "phase": "meetings"},
            idempotency_key=f"{cid}:{uuid.uuid4().hex}", occurred_at=datetime.now(UTC),
        )  # fmt: skip

    async def caught(kind: str) -> list[Any]:
        async with ctx.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT raw FROM caught_mail ORDER BY id")
            rows = await cur.fetchall()
        msgs = [message_from_bytes(bytes(r["raw"]), policy=default_policy) for r in rows]
        return [
            m for m in msgs
            if m["X-Peerlearn-Kind"] == kind and m["X-Peerlearn-Outbox-Id"].startswith(cid + ":")
        ]  # fmt: skip

    with MailCatcher(ctx.database_url, port=port):
        await add(
            EventType.SELF_ASSESSMENT_REQUESTED,
            {"meeting_id": "visit-1", "host": "vaxa", "due_at": T0.isoformat()},
        )
        await acts.deliver_mail(cid)
        (request,) = await caught("self_assessment")
        text = request.get_body(("plain",)).get_content()
        assert request["To"].endswith("<axel@vaxa.se>")
        assert "- How mature is your internationalisation? (1-5)" in text
        assert "- Main focus (energy / food)" in text
        assert f"PUT /v1/cycles/{cid}/meetings/visit-1/self-assessment" in text
        r = await ctx.client.put(
            f"/v1/cycles/{cid}/meetings/visit-1/self-assessment",
            json={"language": "sv", "answers": ANSWERS},
        )
        assert r.status_code == 200
        start = T0 + timedelta(days=20)
        await add(
            EventType.PREPARATION_PACK_SENT,
            {"meeting_id": "visit-1", "title": "visit-1", "starts_at": start.isoformat()},
        )
        await acts.deliver_mail(cid)
        packs = await caught("preparation_pack")
        assert await caught("self_assessment_reminder") == []  # answered: no reminder
    assert {m["To"].split("<")[1].rstrip(">") for m in packs} == {"axel@vaxa.se", "bea@lodz.pl"}
    bea = next(m for m in packs if "bea@lodz.pl" in m["To"])
    body = bea.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert body.startswith("Dzień dobry Bea Nowak")  # Polish template ...
    assert "Samoocena gospodarza:" in body
    assert "- How mature is your internationalisation?\n  4 / 5" in body  # ... the host's answers
    assert "Mentorprogram för SMF" in body

    # the answers are a projection like the rest: a rebuild gives the same rows
    counts = await projections.arebuild_projections(ctx.database_url, into_live=False)
    async with ctx.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT count(*) AS n FROM self_assessments")
        row = await cur.fetchone()
    assert row is not None and counts["self_assessments"] == row["n"] >= 1


async def test_host_without_answers_is_reminded_with_the_pack(ctx: Ctx) -> None:
    """When the peers' preparation pack goes out and the host has not answered,
    the host's contact gets a reminder with the questions (its answers are due
    by the visit); a host that answered gets none (previous test)."""
    _, cid = await _setup(ctx)
    port = free_port()
    settings = Settings(database_url=ctx.database_url, smtp_host="127.0.0.1", smtp_port=port)
    start = T0 + timedelta(days=20)
    await eventstore.append_event(
        ctx.pool, stream_id=cid, type=EventType.PREPARATION_PACK_SENT,
        payload={"meeting_id": "visit-1", "title": "visit-1", "starts_at": start.isoformat(),
                 "phase": "meetings"},
        idempotency_key=f"{cid}:pack", occurred_at=datetime.now(UTC),
    )  # fmt: skip
    with MailCatcher(ctx.database_url, port=port):
        res = await MailActivities(ctx.pool, settings).deliver_mail(cid)
    # 4 invitations (2 meetings x 2 people), the pack to both, the reminder to the host
    assert res.sent == 4 + 2 + 1
    async with ctx.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT raw FROM caught_mail ORDER BY id DESC LIMIT 3")
        msgs = [
            message_from_bytes(bytes(r["raw"]), policy=default_policy) for r in await cur.fetchall()
        ]
    (rem,) = [m for m in msgs if m["X-Peerlearn-Kind"] == "self_assessment_reminder"]
    assert rem["To"] == "Axel Ek <axel@vaxa.se>"
    assert str(rem["Subject"]).startswith("Påminnelse: er självvärdering för visit-1 ska in senast")
    part = rem.get_body(("plain",))
    assert part is not None and "- Main focus (energy / food)" in part.get_content()


async def test_answers_are_exported_and_erased_with_their_writer(ctx: Ctx) -> None:
    """Issue 12 over issue 13: a host's answers are its own words. A named
    person's key sends them; the person's copy holds them; erasing the person
    leaves them in no table (the log keeps them sealed under a destroyed key)
    and a projection rebuild does not bring them back."""
    from privacy_support import assert_gap_free, tables_holding

    pid, cid = await _setup(ctx)
    url = f"/v1/cycles/{cid}/meetings/visit-1/self-assessment"
    marker = "Kvantmentorskap" + uuid.uuid4().hex[:6]
    axel = key_headers(ctx.database_url, "partner", [pid], organisation="vaxa", person="Axel Ek")
    answers = [{"question_id": "support", "value": f"{marker} för SMF."}]
    assert (await ctx.client.put(url, json={"answers": answers}, headers=axel)).status_code == 200
    async with ctx.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT payload FROM events WHERE stream_id = %s AND type = %s",
            (cid, EventType.SELF_ASSESSMENT_SUBMITTED.value),
        )
        (row,) = await cur.fetchall()
    assert "answers" not in row["payload"] and "answers_sealed" in row["payload"]
    assert await tables_holding(ctx.pool, marker) == ["self_assessments.answers"]

    export = f"/v1/organisations/vaxa/export?person={'axel@vaxa.se'}"
    (mine,) = (await ctx.client.get(export)).json()["self_assessments"]
    assert mine["cycle_id"] == cid and marker in str(mine["answers"])

    r = await ctx.client.post("/v1/erasures", json={"person": "Axel Ek", "organisation": "vaxa"})
    assert r.status_code in (200, 201), r.text
    assert r.json()["writings"] == [f"sa:{cid}:visit-1"] and r.json()["note_ids"] == []
    assert (await ctx.client.get(url)).status_code == 404
    assert (await ctx.client.get(export)).json()["self_assessments"] == []
    assert await tables_holding(ctx.pool, marker) == []
    await projections.arebuild_projections(ctx.database_url)
    assert await tables_holding(ctx.pool, marker) == []
    assert (await ctx.client.get(url)).status_code == 404
    await assert_gap_free(ctx.pool)
