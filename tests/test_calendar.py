"""HTTP side of issue 13's people and messages: contacts in the programme body
(validated, stored, returned), the cycle's subscribable calendar feed (same
access as reading the cycle), and the caught mail for admins."""

from __future__ import annotations

import smtplib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio
from auth_helpers import key_headers
from icalendar import Calendar
from psycopg_pool import AsyncConnectionPool
from review_support import Ctx, cycle_started, open_ctx
from temporalio.testing import WorkflowEnvironment

from peerlearn import eventstore, mail
from peerlearn.events import EventType
from peerlearn.keys import create_key, revoke_key
from peerlearn.mailcatcher import MailCatcher
from peerlearn.settings import Settings
from service.ports import free_port

T0 = datetime(2031, 5, 4, 8, 0, tzinfo=UTC)
CONTACTS = [
    {"name": "Anna Berg", "email": "anna@vaxa.se", "language": "sv", "role": "coordinator"},
    {"name": "Axel Ek", "email": "axel@vaxa.se", "language": "sv", "role": "host_contact"},
]


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ctx(
    temporal_env: WorkflowEnvironment, pool: AsyncConnectionPool, database_url: str
) -> AsyncIterator[Ctx]:
    sender = "peerlearn <noreply@example.org>"
    async with open_ctx(temporal_env, pool, database_url, smtp_from=sender) as c:
        yield c


def _programme_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "p-" + uuid.uuid4().hex[:8],
        "name": "Green peers",
        "time_zone": "Europe/Stockholm",
        "partners": [
            {"id": "vaxa", "name": "Växa", "country": "SE", "contacts": CONTACTS},
            {"id": "lodz", "name": "Łódź", "country": "PL"},
        ],
        "facilitators": [
            {"name": "Max", "email": "max@esca.org", "role": "manager", "language": "de"},
            {"name": "Fay", "organisation": "ESCA"},
        ],
    }
    body.update(over)
    return body


async def test_contacts_are_validated_stored_and_returned(ctx: Ctx) -> None:
    body = _programme_body()
    r = await ctx.client.post("/v1/programmes", json=body)
    assert r.status_code == 201, r.text
    got = (await ctx.client.get(f"/v1/programmes/{body['id']}")).json()
    assert got["partners"][0]["contacts"] == CONTACTS
    assert got["partners"][1]["contacts"] == []
    assert got["facilitators"][0] == {
        "name": "Max", "organisation": None, "email": "max@esca.org", "language": "de",
        "role": "manager",
    }  # fmt: skip
    assert got["facilitators"][1]["email"] is None
    bad = [
        {**CONTACTS[0], "email": "anna at vaxa"},
        {**CONTACTS[0], "language": "Swedish"},
        {**CONTACTS[0], "role": "boss"},
        {"name": "", "email": "x@y.se", "role": "participant"},
    ]
    for contact in bad:
        b = _programme_body()
        b["partners"][0]["contacts"] = [contact]
        r = await ctx.client.post("/v1/programmes", json=b)
        assert r.status_code == 422, (contact, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    b = _programme_body(facilitators=[{"name": "Max", "email": "max@", "role": "manager"}])
    assert (await ctx.client.post("/v1/programmes", json=b)).status_code == 422


async def _cycle_with_changes(ctx: Ctx, programme_id: str) -> str:
    cid = "c-" + uuid.uuid4().hex[:8]

    async def add(n: int, type_: EventType, payload: dict[str, Any]) -> None:
        await eventstore.append_event(
            ctx.pool,
            stream_id=cid,
            type=type_,
            payload={**payload, "phase": "meetings"},
            idempotency_key=f"{cid}:{n}",
            occurred_at=T0 + timedelta(minutes=n),
        )

    def plan(mid: str, start: datetime, host: str | None) -> dict[str, Any]:
        return {
            "meeting_id": mid, "kind": "site_visit" if host else "webinar", "title": mid,
            "host": host, "format": "on_site" if host else "online",
            "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=3)).isoformat(),
            "topics": [], "target_groups": [], "participants": [],
        }  # fmt: skip

    await add(
        1,
        EventType.CYCLE_STARTED,
        cycle_started(
            programme_id, cid, ["vaxa", "lodz"], T0 + timedelta(days=300),
            [plan("web-1", T0 + timedelta(days=20), None),
             plan("visit-1", T0 + timedelta(days=50), "vaxa")],
        ),
    )  # fmt: skip
    moved = T0 + timedelta(days=52)
    await add(
        2,
        EventType.MEETING_MOVED,
        {"meeting_id": "visit-1", "from": None, "starts_at": moved.isoformat(),
         "ends_at": (moved + timedelta(hours=3)).isoformat()},
    )  # fmt: skip
    await add(3, EventType.MEETING_CANCELLED, {"meeting_id": "web-1", "reason": "none"})
    return cid


async def test_calendar_feed_and_its_access(ctx: Ctx) -> None:
    body = _programme_body()
    assert (await ctx.client.post("/v1/programmes", json=body)).status_code == 201
    cid = await _cycle_with_changes(ctx, body["id"])
    r = await ctx.client.get(f"/v1/cycles/{cid}/calendar.ics")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/calendar")
    cal = Calendar.from_ical(r.content)
    assert cal.get("METHOD") is None
    events = {str(e["UID"]): e for e in cal.walk("VEVENT")}
    visit, web = events[f"{cid}.visit-1@example.org"], events[f"{cid}.web-1@example.org"]
    assert visit.decoded("SEQUENCE") == 1 and str(visit["STATUS"]) == "CONFIRMED"
    assert visit.decoded("DTSTART") == T0 + timedelta(days=52)
    assert str(visit["LOCATION"]) == "Växa"
    assert web.decoded("SEQUENCE") == 1 and str(web["STATUS"]) == "CANCELLED"
    # the feed's UIDs are the invitations' UIDs
    async with ctx.pool.connection() as conn:
        cctx = await mail.load_cycle_context(conn, cid)
    assert cctx is not None
    planned = mail.plan_row(
        {"id": f"{cid}:1", "cycle_id": cid, "kind": "invitation", "meeting_id": None,
         "created_at": T0, "payload": {"event": {"version": 1}}},
        cctx, Settings(smtp_from="peerlearn <noreply@example.org>"),
    )  # fmt: skip
    assert planned and all(p.ics for p in planned)
    invite_uids = {str(next(iter(Calendar.from_ical(p.ics or b"").walk("VEVENT")))["UID"])
                   for p in planned}  # fmt: skip
    assert invite_uids == set(events)

    # who may read it: as for the cycle
    url = f"/v1/cycles/{cid}/calendar.ics"
    granted = key_headers(ctx.database_url, "partner", [body["id"]], organisation="vaxa")
    assert (await ctx.client.get(url, headers=granted)).status_code == 200
    other = key_headers(ctx.database_url, "manager", ["someone-else"])
    assert (await ctx.client.get(url, headers=other)).status_code in (403, 404)
    anonymous = await ctx.client.get(url, headers={"Authorization": ""})
    assert anonymous.status_code == 401
    assert (await ctx.client.get("/v1/cycles/nope/calendar.ics")).status_code == 404


async def test_caught_mail_for_admins_only(ctx: Ctx) -> None:
    msg = mail.build_message(
        sender="peerlearn <noreply@example.org>",
        contact=mail.Contact("Anna Berg", "anna@vaxa.se", "sv", "coordinator", "vaxa"),
        subject="Inbjudan: Besök",
        body="Hej Anna Berg,\n",
        message_id="<pl.test1@example.org>",
        date=T0,
        language="sv",
        outbox_id="c:1",
        kind="invitation",
        ics=("REQUEST", b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n"),
    )
    port = free_port()
    with MailCatcher(ctx.database_url, port=port), smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.send_message(msg)
        smtp.send_message(msg)  # a re-send: same Message-ID
    r = await ctx.client.get("/v1/mail", params={"limit": 10})
    assert r.status_code == 200, r.text
    items = [i for i in r.json()["items"] if i["message_id"] == "<pl.test1@example.org>"]
    assert len(items) == 2 and {i["copies"] for i in items} == {2}
    first = items[0]
    assert first["subject"] == "Inbjudan: Besök" and first["language"] == "sv"
    assert first["kind"] == "invitation" and first["calendar_method"] == "REQUEST"
    assert first["rcpt_to"] == ["anna@vaxa.se"]
    detail = (await ctx.client.get(f"/v1/mail/{first['id']}")).json()
    assert detail["text"].startswith("Hej Anna Berg") and "METHOD:REQUEST" in detail["calendar"]
    assert detail["attachments"] == ["invite.ics"]
    assert (await ctx.client.get("/v1/mail/999999")).status_code == 404
    manager = key_headers(ctx.database_url, "manager", ["any-programme"])
    assert (await ctx.client.get("/v1/mail", headers=manager)).status_code == 403


async def test_programme_edit_route_changes_contacts(ctx: Ctx) -> None:
    body = _programme_body()
    assert (await ctx.client.post("/v1/programmes", json=body)).status_code == 201
    url = f"/v1/programmes/{body['id']}"
    partners = body["partners"]
    partners[1]["contacts"] = [
        {"name": "Jan Nowak", "email": "jan@lodz.pl", "language": "pl", "role": "host_contact"}
    ]
    r = await ctx.client.patch(url, json={"partners": partners})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["partners"][1]["contacts"][0]["email"] == "jan@lodz.pl"
    assert got["partners"][0]["contacts"] == CONTACTS  # the whole list was sent
    assert got["facilitators"][0]["email"] == "max@esca.org"  # not sent: unchanged
    assert got["version"] == 2
    assert (await ctx.client.get(url)).json() == got
    # partners cannot disappear; contacts are validated as on create
    r = await ctx.client.patch(url, json={"partners": partners[:1]})
    assert r.status_code == 422 and "lodz" in r.json()["detail"]
    partners[1]["contacts"][0]["email"] = "jan@"
    assert (await ctx.client.patch(url, json={"partners": partners})).status_code == 422
    partner_key = key_headers(ctx.database_url, "partner", [body["id"]], organisation="vaxa")
    r = await ctx.client.patch(url, json={"name": "x"}, headers=partner_key)
    assert r.status_code == 403
    assert (await ctx.client.patch("/v1/programmes/nope", json={"name": "x"})).status_code == 404


async def test_calendar_token_subscribes_without_a_header(ctx: Ctx) -> None:
    """Calendar apps cannot send headers: a per-cycle token in the URL reads the
    feed, a wrong one is 401, and revoking the key that made it kills it."""
    body = _programme_body()
    assert (await ctx.client.post("/v1/programmes", json=body)).status_code == 201
    cid = await _cycle_with_changes(ctx, body["id"])
    key_id, key = create_key(ctx.database_url, "partner", [body["id"]], "vaxa", name="cal")
    r = await ctx.client.post(
        f"/v1/cycles/{cid}/calendar-token", headers={"Authorization": f"Bearer {key}"}
    )
    assert r.status_code == 200, r.text
    url = r.json()["url"]
    assert url.startswith(f"/v1/cycles/{cid}/calendar.ics?token=") and key not in url
    no_header = {"Authorization": ""}
    ok = await ctx.client.get(url, headers=no_header)
    assert ok.status_code == 200, ok.text
    assert f"{cid}.visit-1@example.org" in ok.text
    # the token reads this cycle's feed only, and only that path
    token = r.json()["token"]
    other_cid = await _cycle_with_changes(ctx, body["id"])
    wrong = [
        f"/v1/cycles/{cid}/calendar.ics?token={token[:-1]}{'1' if token[-1] == '0' else '0'}",
        f"/v1/cycles/{cid}/calendar.ics?token=nonsense",
        f"/v1/cycles/{other_cid}/calendar.ics?token={token}",
        f"/v1/cycles/nope/calendar.ics?token={token}",
    ]
    for bad in wrong:
        assert (await ctx.client.get(bad, headers=no_header)).status_code == 401, bad
    cycle_url = f"/v1/cycles/{cid}?token={token}"
    assert (await ctx.client.get(cycle_url, headers=no_header)).status_code == 401
    # a key without access to the cycle cannot mint a token
    outsider = key_headers(ctx.database_url, "manager", ["someone-else"])
    denied = await ctx.client.post(f"/v1/cycles/{cid}/calendar-token", headers=outsider)
    assert denied.status_code in (403, 404)
    assert revoke_key(ctx.database_url, key_id)
    assert (await ctx.client.get(url, headers=no_header)).status_code == 401
