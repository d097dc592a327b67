"""E-mail from the outbox against a real SMTP server (the aiosmtpd mail catcher
on a local port, storing into this module's PostgreSQL): who receives what and
in which language, the calendar parts (UID stable, SEQUENCE raised on a move,
CANCEL on cancel), and no duplicate Message-ID after a crash and redelivery.

The events are appended through the real event store (so the real projectors
write the outbox rows); delivery is the real activity code. The last test runs
a real PeerLearningCycle on the Temporal dev server with the worker's
``deliver_outbox`` (webhook, then e-mail) to show the workflow needs nothing
new: invitations and updates arrive by themselves.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from cycle_support import StubMining  # tests/ is on sys.path
from icalendar import Calendar
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.cycle import CycleActivities
from activities.mail import MailActivities, OutboxActivities
from activities.reports import ReportActivities
from peerlearn import eventstore, mail
from peerlearn.events import EventType
from peerlearn.mailcatcher import CatchingHandler, MailCatcher
from peerlearn.settings import Settings
from service.ports import free_port
from workflows.cycle import PeerLearningCycle
from workflows.types import (
    CycleInput,
    CyclePolicies,
    MeetingPlan,
    MoveMeetingInput,
    workflow_id_for,
)

T0 = datetime(2031, 3, 1, 9, 0, tzinfo=UTC)
REPO = Path(__file__).resolve().parent.parent
PARTNERS = [
    {
        "id": "a",
        "name": "Växa Cluster",
        "country": "SE",
        "contacts": [
            {"name": "Anna Berg", "email": "anna@a.se", "language": "sv", "role": "coordinator"},
            {"name": "Axel Ek", "email": "axel@a.se", "language": "sv", "role": "host_contact"},
        ],
    },
    {
        "id": "b",
        "name": "Łódź agency",
        "country": "PL",
        "contacts": [
            {"name": "Bea Nowak", "email": "bea@b.pl", "language": "pl", "role": "participant"},
        ],
    },
    {
        "id": "c",
        "name": "Cluster C",
        "country": "DE",
        "contacts": [
            {"name": "Cleo Huber", "email": "cleo@c.de", "language": "de", "role": "coordinator"},
            {
                "name": "Fiona Virtanen",
                "email": "fiona@c.de",
                "language": "fi",
                "role": "participant",
            },
        ],
    },
]
FACILITATORS = [
    {"name": "Max Manager", "email": "max@esca.org", "language": "en", "role": "manager"},
    {"name": "No Mail", "organisation": "ESCA"},  # no e-mail: never a recipient
]
ALL = {"anna@a.se", "axel@a.se", "bea@b.pl", "cleo@c.de", "fiona@c.de", "max@esca.org"}


@pytest.fixture(scope="module")
def catcher(database_url: str) -> Iterator[MailCatcher]:
    with MailCatcher(database_url, port=free_port()) as c:
        yield c


@pytest.fixture(scope="module")
def settings(catcher: MailCatcher, database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        smtp_host="127.0.0.1",
        smtp_port=catcher.port,
        smtp_from="peerlearn <noreply@example.org>",
    )


async def _programme(pool: AsyncConnectionPool) -> str:
    pid = "prog-" + uuid.uuid4().hex[:8]
    await eventstore.append_event(
        pool,
        stream_id=eventstore.programme_stream(pid),
        type=EventType.PROGRAMME_CREATED,
        payload={
            "id": pid,
            "name": "Green peers",
            "time_zone": "Europe/Stockholm",
            "partners": PARTNERS,
            "facilitators": FACILITATORS,
            "languages": ["en", "sv", "pl", "de"],
        },
        idempotency_key=f"programme:{pid}:created",
        occurred_at=T0,
    )
    return pid


def _plan(mid: str, start: datetime, host: str | None) -> dict[str, Any]:
    return {
        "meeting_id": mid,
        "kind": "site_visit" if host else "kickoff",
        "title": f"Meeting {mid}",
        "host": host,
        "format": "on_site" if host else "online",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=8)).isoformat(),
        "topics": ["innovation support"],
        "target_groups": [],
        "participants": [],
    }


class Cycle:
    """Appends a cycle's events the way the workflow does (one stream, keys unique)."""

    def __init__(self, pool: AsyncConnectionPool, programme_id: str) -> None:
        self.pool, self.programme_id = pool, programme_id
        self.id = "cyc-" + uuid.uuid4().hex[:8]
        self.n = 0

    async def add(self, type_: EventType, payload: dict[str, Any], at: datetime = T0) -> None:
        self.n += 1
        await eventstore.append_event(
            self.pool,
            stream_id=self.id,
            type=type_,
            payload={**payload, "phase": "meetings"},
            idempotency_key=f"{self.id}:{self.n}",
            occurred_at=at,
        )

    async def start(self) -> None:
        await self.add(
            EventType.CYCLE_STARTED,
            {
                "programme_id": self.programme_id,
                "workflow_id": workflow_id_for(self.id),
                "title": "Peer reviews 2031",
                "time_zone": "Europe/Stockholm",
                "partners": ["a", "b", "c"],
                "ends_at": (T0 + timedelta(days=200)).isoformat(),
                "policies": {"notes_due_after_s": 7 * 86400},
                "meetings": [
                    _plan("kickoff", T0 + timedelta(days=10), None),
                    _plan("visit-1", T0 + timedelta(days=40), "a"),
                ],
            },
            at=T0 - timedelta(days=30),
        )

    async def note(self, meeting_id: str, author: str) -> None:
        self.n += 1
        await self.add(
            EventType.NOTES_SUBMITTED,
            {
                "note_id": f"{self.id}-n{self.n}",
                "meeting_id": meeting_id,
                "author_organisation": author,
                "language": "en",
                "text": "We learnt a lot.",
                "client_key": uuid.uuid4().hex,
            },
        )


async def _caught(pool: AsyncConnectionPool, after_id: int = 0) -> list[dict[str, Any]]:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, message_id, rcpt_to, raw FROM caught_mail WHERE id > %s ORDER BY id",
            (after_id,),
        )
        rows = await cur.fetchall()
    for r in rows:
        r["msg"] = message_from_bytes(bytes(r["raw"]), policy=default_policy)
    return rows


async def _last_id(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT coalesce(max(id), 0) AS n FROM caught_mail")
        row = await cur.fetchone()
    return int(row["n"]) if row else 0


def _to(row: dict[str, Any]) -> str:
    return str(row["rcpt_to"][0])


def _calendar(msg: EmailMessage) -> tuple[str, Any]:
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    cal = Calendar.from_ical(data)
    return str(cal["METHOD"]), next(iter(cal.walk("VEVENT")))


def _by_kind(rows: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["msg"]["X-Peerlearn-Kind"] == kind]


async def test_who_receives_what_in_which_language(
    pool: AsyncConnectionPool, settings: Settings
) -> None:
    acts = MailActivities(pool, settings)
    cyc = Cycle(pool, await _programme(pool))
    start = await _last_id(pool)
    await cyc.start()
    res = await acts.deliver_mail(cyc.id)
    rows = await _caught(pool, start)
    # invitations: 2 meetings x (5 partner contacts + the manager); no mail: no message
    assert res.sent == len(rows) == 12 and res.failed == 0
    assert {_to(r) for r in rows} == ALL
    subjects = {(_to(r), r["msg"]["X-Peerlearn-Outbox-Id"]): r["msg"]["Subject"] for r in rows}
    first = {to: s for (to, _), s in subjects.items()}
    assert first["anna@a.se"].startswith("Inbjudan: ")
    assert first["bea@b.pl"].startswith("Zaproszenie: ")
    assert first["cleo@c.de"].startswith("Einladung: ")
    assert first["fiona@c.de"].startswith("Invitation: ")  # fi: no template, English
    assert {r["msg"]["Content-Language"] for r in rows if _to(r) == "fiona@c.de"} == {"en"}
    uids: dict[str, str] = {}
    for r in rows:
        method, ev = _calendar(r["msg"])
        assert method == "REQUEST" and int(ev["SEQUENCE"]) == 0
        mid = str(ev["UID"]).split(".")[1].split("@")[0]
        uids.setdefault(mid, str(ev["UID"]))
        assert str(ev["UID"]) == uids[mid] == f"{cyc.id}.{mid}@example.org"
    assert set(uids) == {"kickoff", "visit-1"}
    assert len({r["message_id"] for r in rows}) == 12  # one id per person and meeting

    # the host's contact alone is asked for the self-assessment
    mark = await _last_id(pool)
    await cyc.add(
        EventType.SELF_ASSESSMENT_REQUESTED,
        {"meeting_id": "visit-1", "host": "a", "due_at": (T0 + timedelta(days=40)).isoformat()},
    )
    await acts.deliver_mail(cyc.id)
    rows = await _caught(pool, mark)
    assert [_to(r) for r in rows] == ["axel@a.se"]
    assert rows[0]["msg"]["Subject"].startswith("Självvärdering före Meeting visit-1")
    assert "text/calendar" not in {p.get_content_type() for p in rows[0]["msg"].walk()}

    # a reminder reaches only the partner with no note yet (b), in Polish
    await cyc.note("visit-1", "a")
    await cyc.note("visit-1", "c")
    mark = await _last_id(pool)
    await cyc.add(
        EventType.REMINDER_SENT,
        {
            "meeting_id": "visit-1",
            "reminder": 1,
            "notes_due_at": (T0 + timedelta(days=47)).isoformat(),
            "note_count": 2,
        },
    )
    await acts.deliver_mail(cyc.id)
    rows = await _caught(pool, mark)
    assert [_to(r) for r in rows] == ["bea@b.pl"]
    body = rows[0]["msg"].get_body(("plain",)).get_content()
    assert rows[0]["msg"]["Subject"].startswith("Przypomnienie 1:")
    assert "Łódź agency" in body and body.startswith("Dzień dobry Bea Nowak")

    mark = await _last_id(pool)
    await cyc.add(
        EventType.NOTES_OVERDUE,
        {
            "meeting_id": "visit-1",
            "notes_due_at": (T0 + timedelta(days=47)).isoformat(),
            "note_count": 2,
            "expected": 3,
        },
    )
    await acts.deliver_mail(cyc.id)
    rows = await _caught(pool, mark)
    # the escalation to the programme's manager only, naming who is missing; the
    # closed window also sends the host its peers' feedback (tests/test_feedback.py)
    assert [(_to(r), r["msg"]["X-Peerlearn-Kind"]) for r in rows] == [
        ("max@esca.org", "escalation"),
        ("axel@a.se", "feedback"),
    ]
    assert (
        "Partners without notes: Łódź agency." in rows[0]["msg"].get_body(("plain",)).get_content()
    )


async def test_calendar_updates_move_and_cancel(
    pool: AsyncConnectionPool, settings: Settings
) -> None:
    acts = MailActivities(pool, settings)
    cyc = Cycle(pool, await _programme(pool))
    await cyc.start()
    await acts.deliver_mail(cyc.id)
    seen: list[tuple[str, int, str]] = []
    for days in (41, 42):
        mark = await _last_id(pool)
        start = T0 + timedelta(days=days)
        await cyc.add(
            EventType.MEETING_MOVED,
            {
                "meeting_id": "visit-1",
                "from": None,
                "starts_at": start.isoformat(),
                "ends_at": (start + timedelta(hours=8)).isoformat(),
            },
        )
        await acts.deliver_mail(cyc.id)
        rows = await _caught(pool, mark)
        assert {_to(r) for r in rows} == ALL and len(rows) == 6
        for r in rows:
            method, ev = _calendar(r["msg"])
            assert ev.decoded("DTSTART") == start
            seen.append((method, int(ev["SEQUENCE"]), str(ev["UID"])))
    mark = await _last_id(pool)
    await cyc.add(EventType.MEETING_CANCELLED, {"meeting_id": "visit-1", "reason": "flooding"})
    await acts.deliver_mail(cyc.id)
    rows = await _caught(pool, mark)
    assert len(rows) == 6 and rows[0]["msg"]["Subject"].startswith(
        ("Cancelled", "Inställt", "Odwoł", "Abgesagt")
    )
    for r in rows:
        method, ev = _calendar(r["msg"])
        seen.append((method, int(ev["SEQUENCE"]), str(ev["UID"])))
        assert str(ev["STATUS"]) == "CANCELLED"
    assert {u for _, _, u in seen} == {f"{cyc.id}.visit-1@example.org"}
    assert sorted({(m, s) for m, s, _ in seen}) == [("CANCEL", 3), ("REQUEST", 1), ("REQUEST", 2)]


class CrashAfterSend(MailActivities):
    """The worker dies after the SMTP server accepted message number ``after``
    and before the delivery record is written."""

    def __init__(self, *args: Any, after: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.after, self.accepted = after, 0

    async def _sent(self, planned: mail.PlannedMail) -> None:
        self.accepted += 1
        if self.accepted == self.after:
            raise RuntimeError("worker killed between send and record")
        await super()._sent(planned)


async def test_crash_between_send_and_record_resends_the_same_message_id(
    pool: AsyncConnectionPool, settings: Settings
) -> None:
    cyc = Cycle(pool, await _programme(pool))
    mark = await _last_id(pool)
    await cyc.start()
    with pytest.raises(RuntimeError, match="worker killed"):
        await CrashAfterSend(pool, settings, after=5).deliver_mail(cyc.id)
    assert len(await _caught(pool, mark)) == 5
    # the retry (a new worker): the unrecorded fifth goes again, under the same id
    res = await MailActivities(pool, settings).deliver_mail(cyc.id)
    assert res.sent == 12 - 4
    rows = await _caught(pool, mark)
    ids = [r["message_id"] for r in rows]
    assert len(rows) == 13 and len(set(ids)) == 12
    twice = [i for i in set(ids) if ids.count(i) == 2]
    assert len(twice) == 1 and ids.index(twice[0]) == 4
    copies = [r["raw"] for r in rows if r["message_id"] == twice[0]]
    assert bytes(copies[0]) == bytes(copies[1])  # byte-identical re-send
    # and once everything is recorded, a redelivery sends nothing at all
    again = await MailActivities(pool, settings).deliver_mail(cyc.id)
    assert again.sent == 0 and len(await _caught(pool, mark)) == 13


async def test_without_a_catcher_mail_waits(pool: AsyncConnectionPool, database_url: str) -> None:
    """No SMTP host configured and no catcher running: nothing fails, nothing is
    marked, and the rows are sent once a server is there."""
    cyc = Cycle(pool, await _programme(pool))
    await cyc.start()
    port = free_port()
    res = await MailActivities(
        pool, Settings(database_url=database_url, mail_catcher_port=port)
    ).deliver_mail(cyc.id)
    assert res.waiting_for_server and res.sent == 0
    with MailCatcher(database_url, port=port):
        res = await MailActivities(
            pool, Settings(database_url=database_url, mail_catcher_port=port)
        ).deliver_mail(cyc.id)
    assert res.sent == 12


async def test_workflow_sends_invitations_and_updates(
    temporal_env: WorkflowEnvironment, pool: AsyncConnectionPool, settings: Settings
) -> None:
    """A real cycle: its own deliver_outbox calls mail the invitations at start
    and an update (SEQUENCE 1, same UID) when a meeting moves."""
    pid = await _programme(pool)
    cycle_id = "wf-" + uuid.uuid4().hex[:8]
    tq = "mail-" + uuid.uuid4().hex[:6]
    now = datetime.now(UTC)
    plans = [
        MeetingPlan(meeting_id="kickoff", kind="kickoff", starts_at=now + timedelta(days=30),
                    format="online"),
        MeetingPlan(meeting_id="visit-1", kind="site_visit", host="b",
                    starts_at=now + timedelta(days=60), duration=timedelta(hours=8)),
    ]  # fmt: skip
    inp = CycleInput(
        cycle_id=cycle_id,
        programme_id=pid,
        title="Live cycle",
        partners=["a", "b", "c"],
        meetings=plans,
        ends_at=now + timedelta(days=120),
        time_zone="Europe/Stockholm",
        policies=CyclePolicies(),
    )
    client = temporal_env.client
    cyc = CycleActivities(pool, settings)
    async with Worker(
        client,
        task_queue=tq,
        workflows=[PeerLearningCycle],
        activities=[
            cyc.append_cycle_event,
            cyc.submit_note,
            OutboxActivities(pool, settings, timeout=3).deliver_outbox,
            ReportActivities(pool, settings).build_wrapup_report,
            StubMining(pool).assign_note_themes,
        ],
    ):
        handle = await client.start_workflow(
            PeerLearningCycle.run, inp, id=workflow_id_for(cycle_id), task_queue=tq
        )

        async def mails(kind: str, n: int) -> list[dict[str, Any]]:
            for _ in range(200):
                rows = [
                    r
                    for r in _by_kind(await _caught(pool), kind)
                    if r["msg"]["X-Peerlearn-Outbox-Id"].startswith(cycle_id + ":")
                ]
                if len(rows) >= n:
                    return rows
                await asyncio.sleep(0.1)
            raise AssertionError(f"{kind}: {len(rows)} of {n} e-mails")

        invites = await mails("invitation", 12)
        assert {_to(r) for r in invites} == ALL
        new_start = now.replace(microsecond=0) + timedelta(days=61)
        await handle.execute_update(
            "move_meeting", MoveMeetingInput(meeting_id="visit-1", starts_at=new_start)
        )
        moved = await mails("meeting_changed", 6)
        for r in moved:
            method, ev = _calendar(r["msg"])
            assert (method, int(ev["SEQUENCE"])) == ("REQUEST", 1)
            assert str(ev["UID"]) == f"{cycle_id}.visit-1@example.org"
            assert ev.decoded("DTSTART") == new_start
        await handle.terminate("test done")


# ---- a real worker crash: kill -9 while the SMTP server holds its answer ----------

_WORKER = """
import asyncio, sys
from activities.mail import MailActivities
from peerlearn import db
from peerlearn.settings import Settings

async def main() -> None:
    url, port, cycle_id = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    pool = await db.open_pool(url, min_size=1, max_size=2)
    settings = Settings(database_url=url, smtp_host="127.0.0.1", smtp_port=port,
                        smtp_from="peerlearn <noreply@example.org>")
    res = await MailActivities(pool, settings, timeout=60).deliver_mail(cycle_id)
    print("sent", res.sent, flush=True)
    await pool.close()

asyncio.run(main())
"""


class SlowAfterStore(CatchingHandler):
    """Stores message number ``hold_at``, then holds the 250 answer: the sender
    is killed while it waits, after the message is stored, before it is recorded."""

    def __init__(self, conninfo: str, hold_at: int) -> None:
        super().__init__(conninfo)
        self.hold_at, self.stored = hold_at, threading.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        if self.received == self.hold_at:
            self.stored.set()
            await asyncio.sleep(30)
        return answer


async def test_worker_killed_after_send_resends_identical_message_id(
    pool: AsyncConnectionPool, settings: Settings, database_url: str
) -> None:
    cyc = Cycle(pool, await _programme(pool))
    await cyc.start()
    mark = await _last_id(pool)
    slow = MailCatcher(database_url, port=free_port())
    slow.handler = SlowAfterStore(database_url, hold_at=4)
    with slow:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WORKER, database_url, str(slow.port), cyc.id, cwd=REPO
        )
        try:
            assert await asyncio.to_thread(slow.handler.stored.wait, 60), "4th message not stored"
            proc.send_signal(signal.SIGKILL)  # the worker dies waiting for "250"
        finally:
            await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == -signal.SIGKILL
    assert len(await _caught(pool, mark)) == 4
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT count(*) AS n FROM mail_deliveries d JOIN outbox o ON o.id = d.outbox_id"
            " WHERE o.cycle_id = %s AND d.sent_at IS NOT NULL",
            (cyc.id,),
        )
        row = await cur.fetchone()
    assert row is not None and row["n"] == 3  # the 4th was stored by the server, not recorded
    # the next delivery (a restarted worker) re-sends the 4th, same Message-ID, same bytes
    res = await MailActivities(pool, settings).deliver_mail(cyc.id)
    assert res.sent == 12 - 3
    rows = await _caught(pool, mark)
    ids = [r["message_id"] for r in rows]
    assert len(rows) == 13 and len(set(ids)) == 12
    assert ids.count(ids[3]) == 2
    assert [bytes(r["raw"]) for r in rows if r["message_id"] == ids[3]][0] == bytes(rows[3]["raw"])
    assert len({bytes(r["raw"]) for r in rows if r["message_id"] == ids[3]}) == 1


async def test_time_budget_leaves_the_rest_for_the_next_attempt(
    pool: AsyncConnectionPool, settings: Settings
) -> None:
    """A run that is out of time stops before the next message (never mid-way), marks
    nothing done, and the next run sends exactly the rest."""
    cyc = Cycle(pool, await _programme(pool))
    await cyc.start()
    mark = await _last_id(pool)
    first = await MailActivities(pool, settings, budget_s=0).deliver_mail(cyc.id)
    assert first.incomplete and first.sent == 0 and first.rows_done == 0
    second = await MailActivities(pool, settings).deliver_mail(cyc.id)
    assert not second.incomplete and second.sent == 12 and second.rows_done == 1
    assert len(await _caught(pool, mark)) == 12
