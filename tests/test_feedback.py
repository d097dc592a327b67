"""Issue 13, feedback to the host: when a site visit's note window closes, the
host's contact receives the peers' statements (strengths, challenges, lessons,
recommendations, each in the language it was written in) by e-mail from a real
SMTP server; the summary is stored once and the host acknowledges it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from auth_helpers import key_headers
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from review_support import Ctx, caught_messages, cycle_started, open_ctx
from temporalio.testing import WorkflowEnvironment

from activities.mail import MailActivities
from peerlearn import eventstore
from peerlearn.events import EventType
from peerlearn.mailcatcher import MailCatcher
from peerlearn.settings import Settings
from service.ports import free_port

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ctx(
    temporal_env: WorkflowEnvironment, pool: AsyncConnectionPool, database_url: str
) -> AsyncIterator[Ctx]:
    async with open_ctx(temporal_env, pool, database_url) as c:
        yield c


STATEMENTS = [
    ("lodz", "pl", "success", "Świetna współpraca z uczelniami."),
    ("lodz", "pl", "recommendation", "Warto wprowadzić program mentorski dla MŚP."),
    ("chem", "de", "challenge", "Die Finanzierung ist kurzfristig."),
    ("chem", "de", "lesson", "Offene Werkstätten ziehen Startups an."),
    ("vaxa", "sv", "success", "Vi är bra på allt."),  # the host's own note: not feedback
    ("chem", "de", "other", "Das Wetter war gut."),  # not a feedback kind
]


async def test_feedback_mailed_stored_and_acknowledged(ctx: Ctx) -> None:
    pid = "p-" + uuid.uuid4().hex[:8]
    body = {
        "id": pid, "name": "Green peers", "time_zone": "Europe/Stockholm",
        "partners": [
            {"id": "vaxa", "name": "Växa", "country": "SE", "contacts": [
                {"name": "Axel Ek", "email": "axel@vaxa.se", "language": "sv",
                 "role": "host_contact"}]},
            {"id": "lodz", "name": "Łódź", "country": "PL", "contacts": [
                {"name": "Bea Nowak", "email": "bea@lodz.pl", "language": "pl",
                 "role": "coordinator"}]},
            {"id": "chem", "name": "Chemnitz", "country": "DE"},
        ],
    }  # fmt: skip
    assert (await ctx.client.post("/v1/programmes", json=body)).status_code == 201
    cid = "c-" + uuid.uuid4().hex[:8]
    start = NOW - timedelta(days=8)

    async def add(type_: EventType, payload: dict[str, object], key: str) -> None:
        await eventstore.append_event(
            ctx.pool, stream_id=cid, type=type_, payload={**payload, "phase": "meetings"},
            idempotency_key=f"{cid}:{key}", occurred_at=NOW,
        )  # fmt: skip

    plan = {
        "meeting_id": "visit-1", "kind": "site_visit", "title": "Visit at Växa", "host": "vaxa",
        "format": "on_site", "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=8)).isoformat(),
        "topics": [], "target_groups": [], "participants": [],
    }  # fmt: skip
    web = {**plan, "meeting_id": "web", "kind": "webinar", "host": None, "format": "online",
           "starts_at": (start - timedelta(days=20)).isoformat(),
           "ends_at": (start - timedelta(days=20, hours=-2)).isoformat()}  # fmt: skip
    await add(
        EventType.CYCLE_STARTED,
        cycle_started(pid, cid, ["vaxa", "lodz", "chem"], NOW + timedelta(days=90),
                      [web, plan], imported=True),
        "start",
    )  # fmt: skip
    async with ctx.pool.connection() as conn:
        for i, (org, lang, kind, text) in enumerate(STATEMENTS):
            await conn.execute(
                "INSERT INTO statements (id, note_id, position, programme_id, cycle_id,"
                " meeting_id, organisation_id, text, language, kind, content_hash)"
                " VALUES (%s, %s, 0, %s, %s, 'visit-1', %s, %s, %s, %s, %s)",
                (f"{cid}-s{i}", f"{cid}-n{i}", pid, cid, org, text, lang, kind, f"h{i}"),
            )
    url = f"/v1/cycles/{cid}/meetings/visit-1/feedback"
    assert (await ctx.client.get(url)).status_code == 404  # the window is still open

    # the windows close: a webinar has no host and gets no feedback; the visit does
    await add(EventType.NOTE_WINDOW_CLOSED, {"meeting_id": "web", "note_count": 0}, "w1")
    await add(
        EventType.NOTES_OVERDUE,
        {"meeting_id": "visit-1", "notes_due_at": NOW.isoformat(), "note_count": 2,
         "expected": 3},
        "w2",
    )  # fmt: skip
    async with ctx.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, kind, recipient FROM outbox WHERE cycle_id = %s AND kind = 'feedback'",
            (cid,),
        )
        rows = await cur.fetchall()
    assert [(r["recipient"], r["id"].endswith(":feedback")) for r in rows] == [("host:vaxa", True)]

    port = free_port()
    settings = Settings(database_url=ctx.database_url, smtp_host="127.0.0.1", smtp_port=port)
    with MailCatcher(ctx.database_url, port=port):
        await MailActivities(ctx.pool, settings).deliver_mail(cid)
    msgs = await caught_messages(ctx.pool)
    fb = [
        m for m in msgs if m["X-Peerlearn-Kind"] == "feedback" and cid in m["X-Peerlearn-Outbox-Id"]
    ]
    assert [m["To"] for m in fb] == ["Axel Ek <axel@vaxa.se>"]
    part = fb[0].get_body(("plain",))
    assert part is not None
    text = part.get_content().replace("\r\n", "\n")
    assert fb[0]["Subject"] == "Återkoppling från kollegerna om Visit at Växa"
    assert "Styrkor:\n- Świetna współpraca z uczelniami. (Łódź, pl)\n" in text
    assert "Observerade utmaningar:\n- Die Finanzierung ist kurzfristig. (Chemnitz, de)" in text
    assert "Rekommendationer:\n- Warto wprowadzić program mentorski dla MŚP. (Łódź, pl)" in text
    assert "Vi är bra på allt" not in text and "Wetter" not in text

    # stored as sent: re-mining later does not change what the host got
    async with ctx.pool.connection() as conn:
        await conn.execute("UPDATE statements SET text = 'changed' WHERE cycle_id = %s", (cid,))
    got = (await ctx.client.get(url)).json()
    assert [i["text"] for i in got["recommendations"]] == [
        "Warto wprowadzić program mentorski dla MŚP."
    ]
    assert len(got["strengths"]) == len(got["challenges"]) == len(got["lessons"]) == 1
    assert got["acknowledged_at"] is None

    peer = key_headers(ctx.database_url, "partner", [pid], organisation="lodz")
    assert (await ctx.client.post(f"{url}/acknowledge", json={}, headers=peer)).status_code == 403
    host = key_headers(ctx.database_url, "partner", [pid], organisation="vaxa")
    r = await ctx.client.post(f"{url}/acknowledge", json={"note": "Tack!"}, headers=host)
    assert r.status_code == 200, r.text
    assert r.json()["acknowledged_at"] and r.json()["acknowledgement_note"] == "Tack!"
    web_url = f"/v1/cycles/{cid}/meetings/web/feedback/acknowledge"
    assert (await ctx.client.post(web_url, json={})).status_code == 404
