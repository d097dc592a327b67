"""Issue 13, action plans: the peers' recommendations (mined statements, any
language) become the host's action items through the API; status changes and
progress notes are events; the follow-up e-mail lists the open items, overdue
ones first, to the managers and coordinators (caught by a real SMTP server)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy

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

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ctx(
    temporal_env: WorkflowEnvironment, pool: AsyncConnectionPool, database_url: str
) -> AsyncIterator[Ctx]:
    async with open_ctx(temporal_env, pool, database_url) as c:
        yield c


def _contact(name: str, email: str, lang: str, role: str = "coordinator") -> dict[str, str]:
    return {"name": name, "email": email, "language": lang, "role": role}


async def _setup(c: Ctx) -> tuple[str, str]:
    pid = "p-" + uuid.uuid4().hex[:8]
    body = {
        "id": pid, "name": "Green peers", "time_zone": "Europe/Stockholm",
        "partners": [
            {"id": "vaxa", "name": "Växa", "country": "SE",
             "contacts": [_contact("Anna Berg", "anna@vaxa.se", "sv")]},
            {"id": "lodz", "name": "Łódź", "country": "PL",
             "contacts": [_contact("Bea Nowak", "bea@lodz.pl", "pl")]},
            {"id": "chem", "name": "Chemnitz", "country": "DE",
             "contacts": [_contact("Carl Kurz", "carl@chem.de", "de", "participant")]},
        ],
        "facilitators": [{"name": "Max", "email": "max@esca.org", "role": "manager"}],
    }  # fmt: skip
    assert (await c.client.post("/v1/programmes", json=body)).status_code == 201
    cid = "c-" + uuid.uuid4().hex[:8]
    start = NOW - timedelta(days=30)
    visit = {
        "meeting_id": "visit-1", "kind": "site_visit", "title": "Visit", "host": "vaxa",
        "format": "on_site", "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=8)).isoformat(),
        "topics": [], "target_groups": [], "participants": [],
    }  # fmt: skip
    await eventstore.append_event(
        c.pool,
        stream_id=cid,
        type=EventType.CYCLE_STARTED,
        payload=cycle_started(pid, cid, ["vaxa", "lodz", "chem"], NOW + timedelta(days=100),
                              [visit], phase="kickoff", imported=True),
        idempotency_key=f"{cid}:1",
        occurred_at=start - timedelta(days=60),
    )  # fmt: skip
    # what the miner stored from the notes of the visit (the fixture of this test)
    statements = [
        ("lodz", "pl", "recommendation", "Warto wprowadzić program mentorski dla MŚP."),
        ("chem", "de", "recommendation", "Ein gemeinsames Datenportal für die Mitglieder."),
        ("vaxa", "sv", "recommendation", "Vi borde anställa fler."),  # the host's own: no
        ("lodz", "pl", "lesson", "Spotkania online są skuteczne."),  # not a recommendation
    ]
    async with c.pool.connection() as conn:
        for i, (org, lang, kind, text) in enumerate(statements):
            await conn.execute(
                "INSERT INTO statements (id, note_id, position, programme_id, cycle_id,"
                " meeting_id, organisation_id, text, language, kind, content_hash)"
                " VALUES (%s, %s, 0, %s, %s, 'visit-1', %s, %s, %s, %s, %s)",
                (f"{cid}-s{i}", f"{cid}-n{i}", pid, cid, org, text, lang, kind, f"h{i}"),
            )
    return pid, cid


async def test_recommendation_to_action_to_done(ctx: Ctx) -> None:
    pid, cid = await _setup(ctx)
    base = f"/v1/cycles/{cid}/action-items"
    sugg = (await ctx.client.get(f"{base}/suggestions")).json()["items"]
    assert [(s["organisation"], s["language"]) for s in sugg] == [("lodz", "pl"), ("chem", "de")]
    assert all(s["action_item_ids"] == [] and s["host"] == "vaxa" for s in sugg)
    polish = sugg[0]

    host = key_headers(ctx.database_url, "partner", [pid], organisation="vaxa")
    item = {
        "owner": "vaxa",
        "what": "Start a mentoring programme for SMEs",
        "due_at": (NOW - timedelta(days=1)).isoformat(),
        "recommendation_statement_id": polish["statement_id"],
    }
    r = await ctx.client.post(base, json=item, headers=host)
    assert r.status_code == 201, r.text
    got = r.json()
    assert got["status"] == "open" and got["overdue"] and got["meeting_id"] == "visit-1"
    assert got["recommendation"]["text"].startswith("Warto wprowadzić")
    assert got["recommendation"]["language"] == "pl"
    iid = got["id"]

    r = await ctx.client.patch(
        f"{base}/{iid}", json={"status": "in_progress", "note": "Two mentors found"}, headers=host
    )
    assert r.status_code == 200, r.text
    r = await ctx.client.patch(f"{base}/{iid}", json={"status": "done"}, headers=host)
    done = r.json()
    assert done["status"] == "done" and not done["overdue"]
    assert [(p["status"], p["note"]) for p in done["progress"]] == [
        ("in_progress", "Two mentors found"),
        ("done", None),
    ]
    assert (
        await ctx.client.patch(f"{base}/{iid}", json={"status": "in_progress"})
    ).status_code == 422
    sugg = (await ctx.client.get(f"{base}/suggestions", params={"meeting_id": "visit-1"})).json()
    assert (
        sugg["items"][0]["action_item_ids"] == [iid] and sugg["items"][1]["action_item_ids"] == []
    )
    listed = (await ctx.client.get(base)).json()["items"]
    assert [i["id"] for i in listed] == [iid]

    # who may write: the owner's own partner key, managers; not a peer, not an analyst
    peer = key_headers(ctx.database_url, "partner", [pid], organisation="lodz")
    assert (await ctx.client.post(base, json=item, headers=peer)).status_code == 403
    assert (
        await ctx.client.patch(f"{base}/{iid}", json={"note": "x"}, headers=peer)
    ).status_code == 403
    analyst = key_headers(ctx.database_url, "analyst", [pid])
    assert (await ctx.client.post(base, json=item, headers=analyst)).status_code == 403
    assert (await ctx.client.get(base, headers=analyst)).status_code == 200
    assert (await ctx.client.post(base, json={**item, "owner": "nobody"})).status_code == 422
    lesson = {**item, "recommendation_statement_id": f"{cid}-s3"}
    assert (await ctx.client.post(base, json=lesson)).status_code == 422
    assert (await ctx.client.patch(f"{base}/nope", json={"note": "x"})).status_code == 404

    # the log is the truth: a rebuild gives the same items, progress included
    async with ctx.pool.connection() as conn:
        live = (await projections.snapshot(conn))["action_items"]
    counts = await projections.arebuild_projections(ctx.database_url)
    async with ctx.pool.connection() as conn:
        assert (await projections.snapshot(conn))["action_items"] == live
    assert counts["action_items"] == len(live)

    # the programme's path recommendation -> action -> done, per host and in total
    path = (await ctx.client.get(f"/v1/programmes/{pid}/action-plan")).json()
    assert path["hosts"] == [
        {"host": "vaxa", "recommendations": 2, "answered": 1, "items": {"done": 1}, "done": 1}
    ]
    assert path["total"]["recommendations"] == 2 and path["total"]["done"] == 1
    assert (await ctx.client.get("/v1/programmes/nope/action-plan")).status_code == 404


async def test_follow_up_mail_lists_open_items_overdue_first(ctx: Ctx) -> None:
    pid, cid = await _setup(ctx)
    base = f"/v1/cycles/{cid}/action-items"
    items = [
        {"owner": "lodz", "what": "Share the partner database", "due_at": None},
        {"owner": "vaxa", "what": "Mentoring programme",
         "due_at": (NOW - timedelta(days=3)).isoformat()},
        {"owner": "chem", "what": "Data portal", "due_at": (NOW + timedelta(days=30)).isoformat()},
        {"owner": "chem", "what": "Dropped idea"},
    ]  # fmt: skip
    ids = []
    for it in items:
        r = await ctx.client.post(base, json=it)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    assert (
        await ctx.client.patch(f"{base}/{ids[3]}", json={"status": "dropped"})
    ).status_code == 200
    await eventstore.append_event(
        ctx.pool,
        stream_id=cid,
        type=EventType.FOLLOW_UP_DUE,
        payload={"report_id": None, "phase": "follow_up"},
        idempotency_key=f"{cid}:follow-up",
        occurred_at=NOW,
    )
    port = free_port()
    settings = Settings(database_url=ctx.database_url, smtp_host="127.0.0.1", smtp_port=port)
    with MailCatcher(ctx.database_url, port=port):
        res = await MailActivities(ctx.pool, settings).deliver_mail(cid)
    # follow-up: the manager and the two coordinators (chem has a participant only);
    # escalation of the one overdue item: the manager and its owner's (Växa's) contact
    assert res.sent == 5
    async with ctx.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT raw FROM caught_mail ORDER BY id DESC LIMIT 5")
        msgs = [
            message_from_bytes(bytes(r["raw"]), policy=default_policy) for r in await cur.fetchall()
        ]
    escalation_subjects = ("Overdue action items", "Försenade åtgärder")
    escalations = [m for m in msgs if str(m["Subject"]).startswith(escalation_subjects)]
    msgs = [m for m in msgs if m not in escalations]
    esc_to = {m["To"].split("<")[1].rstrip(">"): m for m in escalations}
    assert set(esc_to) == {"max@esca.org", "anna@vaxa.se"}
    esc_part = esc_to["max@esca.org"].get_body(("plain",))
    assert esc_part is not None
    esc_lines = [
        ln for ln in esc_part.get_content().splitlines() if ln.startswith("- [")
    ]  # only the overdue item, not the open, future or dropped ones
    assert len(esc_lines) == 1 and esc_lines[0].startswith("- [Växa] Mentoring programme")
    sv_esc = esc_to["anna@vaxa.se"].get_body(("plain",))
    assert sv_esc is not None and sv_esc.get_content().startswith("Hej Anna Berg")
    assert len({m["Message-ID"] for m in escalations}) == 2
    # exactly once: a second delivery run sends nothing more
    with MailCatcher(ctx.database_url, port=port):
        again = await MailActivities(ctx.pool, settings).deliver_mail(cid)
    assert again.sent == 0
    to = {m["To"].split("<")[1].rstrip(">"): m for m in msgs}
    assert set(to) == {"max@esca.org", "anna@vaxa.se", "bea@lodz.pl"}
    part = to["max@esca.org"].get_body(("plain",))
    assert part is not None
    body = part.get_content().replace("\r\n", "\n")
    lines = [ln for ln in body.splitlines() if ln.startswith("- [")]
    assert len(lines) == 3 and "Dropped idea" not in body
    assert lines[0].startswith("- [Växa] Mentoring programme (open, due ") and lines[0].endswith(
        "OVERDUE"
    )
    assert lines[1].startswith("- [Chemnitz] Data portal") and "OVERDUE" not in lines[1]
    assert lines[2] == "- [Łódź] Share the partner database (open)"
    sv_part = to["anna@vaxa.se"].get_body(("plain",))
    assert sv_part is not None
    sv = sv_part.get_content()
    assert sv.startswith("Hej Anna Berg") and "Mentoring programme" in sv
