"""Issue 13, the whole review loop under the time-skipping server, with every
message caught by a real SMTP server (the aiosmtpd catcher):

invitations (with calendar parts) -> the host's self-assessment request with
the questionnaire -> the host's answers -> the peers' preparation pack carrying
them -> the visit -> notes from the peers (the stub miner turns ``kind: text``
lines into statements, in any language) -> a reminder to the host only (the one
partner without notes) -> the note window closes -> the host's feedback e-mail
with the peers' statements -> acknowledgement and an action item answering the
peers' recommendation -> wrap-up -> the follow-up e-mail listing the open item
-> progress recorded as done. The workflow is the production one, unchanged.
Then the right to erasure (issue 12) over that whole loop: the peer's words
copied into the host's feedback, an action item's recommendation, a lifted
action item and the wrap-up report, and the host's self-assessment, reply and
action plan leave every table, and a projection rebuild cannot bring them back.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any, cast

from privacy_support import assert_gap_free, tables_holding
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.cycle import CycleActivities
from activities.mail import OutboxActivities
from activities.reports import ReportActivities
from peerlearn import action_plan, eventstore, privacy, self_assessment
from peerlearn.events import EventType
from peerlearn.mailcatcher import MailCatcher
from peerlearn.projections import arebuild_projections
from peerlearn.settings import Settings
from service.ports import free_port
from workflows.cycle import PeerLearningCycle
from workflows.mining_contract import (
    ASSIGN_NOTE_THEMES,
    AssignNoteThemesInput,
    AssignNoteThemesOutput,
)
from workflows.types import (
    CycleInput,
    CyclePolicies,
    CycleResult,
    MeetingPlan,
    SubmitNoteInput,
    workflow_id_for,
)

QUESTIONS = [
    {"id": "support", "text": "How do you support SMEs?", "type": "text"},
    {"id": "maturity", "text": "How international are your members?", "type": "scale"},
]


def _contact(name: str, email: str, lang: str, role: str) -> dict[str, str]:
    return {"name": name, "email": email, "language": lang, "role": role}


PARTNERS = [
    {"id": "a", "name": "Växa", "country": "SE", "contacts": [
        _contact("Anna Berg", "anna@a.se", "sv", "coordinator"),
        _contact("Axel Ek", "axel@a.se", "sv", "host_contact")]},
    {"id": "b", "name": "Łódź", "country": "PL", "contacts": [
        _contact("Bea Nowak", "bea@b.pl", "pl", "coordinator")]},
    {"id": "c", "name": "Chemnitz", "country": "DE", "contacts": [
        _contact("Carl Kurz", "carl@c.de", "de", "coordinator")]},
]  # fmt: skip


class StatementMiner:
    """Stands in for the miner: each ``kind: text`` line of a note becomes a
    statement of that kind, in the note's language (what the real miner stores)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    @activity.defn(name=ASSIGN_NOTE_THEMES)
    async def assign_note_themes(self, inp: AssignNoteThemesInput) -> AssignNoteThemesOutput:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT * FROM notes WHERE id = %s", (inp.note_id,))
            note = await cur.fetchone()
            assert note is not None
            n = 0
            for pos, line in enumerate(note["text"].splitlines()):
                kind, _, text = line.partition(": ")
                await cur.execute(
                    "INSERT INTO statements (id, note_id, position, programme_id, cycle_id,"
                    " meeting_id, organisation_id, text, language, kind, content_hash)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (note_id, position) DO NOTHING",
                    (f"{inp.note_id}-{pos}", inp.note_id, pos, note["programme_id"],
                     inp.cycle_id, inp.meeting_id, note["author_organisation"], text,
                     note["language"], kind, f"h-{inp.note_id}-{pos}"),
                )  # fmt: skip
                n += 1
        return AssignNoteThemesOutput(statement_count=n, theme_ids=[])


async def _sleep_until(env: WorkflowEnvironment, at: datetime) -> None:
    now = await env.get_current_time()
    if at > now:
        await env.sleep(at - now)


class Inbox:
    """The catcher's messages of one cycle, by kind and recipient."""

    def __init__(self, pool: AsyncConnectionPool, cycle_id: str) -> None:
        self.pool, self.cycle_id = pool, cycle_id

    async def all(self) -> list[EmailMessage]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute("SELECT raw FROM caught_mail ORDER BY id")
            rows = await cur.fetchall()
        msgs = [
            cast(EmailMessage, message_from_bytes(bytes(r["raw"]), policy=default_policy))
            for r in rows
        ]
        return [m for m in msgs if m["X-Peerlearn-Outbox-Id"].startswith(self.cycle_id + ":")]

    async def wait(self, kind: str, n: int, within: float = 60.0) -> list[EmailMessage]:
        """Delivery runs in the background of the workflow, in real time."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            got = [m for m in await self.all() if m["X-Peerlearn-Kind"] == kind]
            if len(got) >= n or asyncio.get_running_loop().time() > deadline:
                assert len(got) == n, f"{kind}: {[m['To'] for m in got]} (wanted {n})"
                return got
            await asyncio.sleep(0.2)


def _to(msgs: list[EmailMessage]) -> list[str]:
    return sorted(str(m["To"]).split("<")[1].rstrip(">") for m in msgs)


def _text(m: EmailMessage) -> str:
    part = m.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


async def _append(pool: AsyncConnectionPool, cycle_id: str, type_: EventType, p: Any) -> None:
    """What the API routes append (after their checks)."""
    await eventstore.append_event(
        pool,
        stream_id=cycle_id,
        type=type_,
        payload=p,
        idempotency_key=f"{cycle_id}:test:{uuid.uuid4().hex}",
        occurred_at=datetime.now(UTC),
    )


async def test_review_loop_with_mail(
    time_skipping_env: WorkflowEnvironment, pool: AsyncConnectionPool, database_url: str
) -> None:
    env = time_skipping_env
    pid, cid = "prog-" + uuid.uuid4().hex[:6], "loop-" + uuid.uuid4().hex[:6]
    await eventstore.append_event(
        pool,
        stream_id=eventstore.programme_stream(pid),
        type=EventType.PROGRAMME_CREATED,
        payload={"id": pid, "name": "Green peers", "time_zone": "Europe/Stockholm",
                 "partners": PARTNERS, "languages": ["sv", "pl", "de"],
                 "facilitators": [{"name": "Max", "email": "max@esca.org", "role": "manager"}],
                 "self_assessment_questions": QUESTIONS},
        idempotency_key=f"programme:{pid}:created",
        occurred_at=datetime.now(UTC),
    )  # fmt: skip
    t0 = await env.get_current_time()
    visit_at = t0 + timedelta(days=30)
    plan = [
        MeetingPlan(meeting_id="kickoff", kind="kickoff", starts_at=t0 + timedelta(days=3),
                    title="Kick-off", format="online"),
        MeetingPlan(meeting_id="visit-1", kind="site_visit", host="a", starts_at=visit_at,
                    duration=timedelta(days=1), title="Visit at Växa"),
    ]  # fmt: skip
    inp = CycleInput(
        cycle_id=cid,
        programme_id=pid,
        title="Peer reviews",
        partners=["a", "b", "c"],
        meetings=plan,
        ends_at=visit_at + timedelta(days=60),
        time_zone="Europe/Stockholm",
        policies=CyclePolicies(follow_up_after=timedelta(days=30), min_notes_per_meeting=3),
    )
    port = free_port()
    settings = Settings(database_url=database_url, smtp_host="127.0.0.1", smtp_port=port)
    cyc = CycleActivities(pool, settings)
    inbox = Inbox(pool, cid)
    tq = "loop-" + uuid.uuid4().hex[:6]
    with MailCatcher(database_url, port=port):
        async with Worker(
            env.client,
            task_queue=tq,
            workflows=[PeerLearningCycle],
            activities=[
                cyc.append_cycle_event,
                cyc.submit_note,
                OutboxActivities(pool, settings, timeout=5).deliver_outbox,
                ReportActivities(pool, settings).build_wrapup_report,
                StatementMiner(pool).assign_note_themes,
            ],
        ):
            handle: WorkflowHandle[
                PeerLearningCycle, CycleResult
            ] = await env.client.start_workflow(
                PeerLearningCycle.run,
                inp,
                id=workflow_id_for(cid),
                task_queue=tq,
                execution_timeout=timedelta(days=400),
            )
            everyone = ["anna@a.se", "axel@a.se", "bea@b.pl", "carl@c.de", "max@esca.org"]
            invites = await inbox.wait("invitation", 10)  # 2 meetings x 5 people
            assert _to(invites) == sorted(everyone * 2)

            # 21 days before the visit: the host's contact gets the questionnaire
            await _sleep_until(env, visit_at - timedelta(days=21) + timedelta(hours=1))
            (request,) = await inbox.wait("self_assessment", 1)
            assert _to([request]) == ["axel@a.se"]
            assert "- How international are your members? (1-5)" in _text(request)
            answers = self_assessment.validate_answers(
                QUESTIONS,
                [{"question_id": "support", "value": "Mentorprogram för SMF"},
                 {"question_id": "maturity", "value": 3}],
            )  # fmt: skip
            await _append(pool, cid, EventType.SELF_ASSESSMENT_SUBMITTED,
                          {"meeting_id": "visit-1", "host": "a", "language": "sv",
                           "answers": answers, "submitted_by": "host-key"})  # fmt: skip

            # 14 days before: the preparation pack carries the host's answers
            await _sleep_until(env, visit_at - timedelta(days=14) + timedelta(hours=1))
            packs = [m for m in await inbox.wait("preparation_pack", 10)
                     if "visit" in str(m["Subject"]).lower() or "Visit" in _text(m)]  # fmt: skip
            bea = next(m for m in packs if "bea@b.pl" in str(m["To"]))
            assert "Samoocena gospodarza:" in _text(bea)
            assert "- How international are your members?\n  3 / 5" in _text(bea)

            # the visit; the peers (b in Polish, c in German) write notes, the host does not
            await _sleep_until(env, visit_at + timedelta(days=2))
            for org, lang, text in (
                ("b", "pl", "success: Świetna współpraca z uczelniami.\n"
                            "recommendation: Warto wprowadzić program mentorski.\n"
                            "action: Łódź pilotuje mentoring"),
                ("c", "de", "challenge: Die Finanzierung ist kurzfristig."),
            ):  # fmt: skip
                _ = await handle.execute_update(
                    PeerLearningCycle.submit_notes,
                    SubmitNoteInput(meeting_id="visit-1", client_key=uuid.uuid4().hex,
                                    author_organisation=org, language=lang, text=text),
                )  # fmt: skip
            # past the deadline (7 days after the visit): the two reminders (3 days and
            # 1 day before it) reached only the host's note writer; the kick-off's
            # reminders went to all three partners, none wrote on it
            await _sleep_until(env, visit_at + timedelta(days=7, hours=1))
            reminders = await inbox.wait("reminder", 2 * 3 + 2)
            on_visit = [m for m in reminders if "Visit at Växa" in str(m["Subject"])]
            assert _to(on_visit) == ["anna@a.se", "anna@a.se"]

            # the note window closes: the host gets the peers' feedback, in Swedish
            (fb,) = await inbox.wait("feedback", 1)
            assert _to([fb]) == ["axel@a.se"]
            text = _text(fb)
            assert "Styrkor:\n- Świetna współpraca z uczelniami. (Łódź, pl)" in text
            assert "Rekommendationer:\n- Warto wprowadzić program mentorski. (Łódź, pl)" in text
            assert (
                "Observerade utmaningar:\n- Die Finanzierung ist kurzfristig. (Chemnitz, de)"
                in text
            )

            # the host acknowledges and answers the recommendation with an action item
            await _append(pool, cid, EventType.FEEDBACK_ACKNOWLEDGED,
                          {"meeting_id": "visit-1", "by": "host-key",
                           "note": "Tack för återkopplingen"})  # fmt: skip
            async with pool.connection() as conn:
                (rec,) = await action_plan.suggestions(conn, cid, "visit-1")
                snapshot = await action_plan.recommendation(conn, cid, rec["statement_id"])
            due = visit_at + timedelta(days=20)
            await _append(pool, cid, EventType.ACTION_ITEM_ADDED,
                          {"item_id": "ai-mentor", "owner": "a", "what": "Mentoring for SMEs",
                           "due_at": due.isoformat(), "meeting_id": "visit-1",
                           "recommendation": snapshot, "by": "host-key"})  # fmt: skip
            await _append(pool, cid, EventType.ACTION_ITEM_UPDATED,
                          {"item_id": "ai-mentor", "status": "in_progress",
                           "note": "Two mentors found", "by": "host-key"})  # fmt: skip

            # wrap-up, then the follow-up 30 days later lists the open item (overdue by then)
            result = await handle.result()
            assert result.status == "completed"
            assert len(await inbox.wait("wrapup_published", 5)) == 5
            follow = await inbox.wait("follow_up", 4)  # the manager and three coordinators
            assert _to(follow) == ["anna@a.se", "bea@b.pl", "carl@c.de", "max@esca.org"]
            max_text = _text(next(m for m in follow if "max@esca.org" in str(m["To"])))
            assert "- [Växa] Mentoring for SMEs (in_progress, due " in max_text
            assert "OVERDUE" in max_text.split("Mentoring for SMEs")[1].splitlines()[0]

        # the owner answers the follow-up: done; the path recommendation -> action -> done
        done = {"item_id": "ai-mentor", "status": "done", "note": "Launched", "by": "a"}
        await _append(pool, cid, EventType.ACTION_ITEM_UPDATED, done)
        async with pool.connection() as conn:
            item = await action_plan.item(conn, cid, "ai-mentor")
            (sugg,) = await action_plan.suggestions(conn, cid, "visit-1")
        assert item["recommendation"]["text"] == "Warto wprowadzić program mentorski."
        assert [p["status"] for p in item["progress"]] == ["in_progress", "done"]
        assert item["status"] == "done" and sugg["action_item_ids"] == ["ai-mentor"]
        # every e-mail of the loop carried a distinct Message-ID
        msgs = await inbox.all()
        assert len({m["Message-ID"] for m in msgs}) == len(msgs)

        # Erasure: the peer b and the host a, on request. Every word of theirs
        # is somewhere first (so the check can see it), nowhere after but in
        # the catcher's copies of the mail already sent (the recipients' inboxes).
        words = {
            "b": ["Warto wprowadzić program mentorski", "Świetna współpraca z uczelniami",
                  "pilotuje mentoring"],
            "a": ["Mentorprogram för SMF", "Mentoring for SMEs", "Two mentors found",
                  "Launched", "Tack för återkopplingen"],
        }  # fmt: skip

        async def stored(word: str) -> list[str]:
            return [t for t in await tables_holding(pool, word) if not t.startswith("caught_mail.")]

        for word in words["a"] + words["b"]:
            assert await stored(word), f"{word!r} is nowhere before the erasure"
        async with pool.connection() as conn, conn.transaction():
            done_b = await privacy.erase(conn, organisation="b")
            done_a = await privacy.erase(conn, organisation="a")
        assert done_a.writings == sorted(
            [f"ack:{cid}:visit-1", f"ai:{cid}:ai-mentor", f"sa:{cid}:visit-1"]
        )
        assert len(done_b.note_ids) == 1 and not done_b.writings
        for rebuilt in (False, True):
            if rebuilt:
                await arebuild_projections(database_url)
            for word in words["a"] + words["b"]:
                assert await stored(word) == [], (word, rebuilt)
            # the third partner's words stay, and so does the action item's frame
            assert await stored("Die Finanzierung ist kurzfristig")
            async with pool.connection() as conn:
                assert await self_assessment.load(conn, cid) == []
                assert [i["id"] for i in await action_plan.items(conn, cid)] == ["plan-visit-1"]
        await assert_gap_free(pool)
