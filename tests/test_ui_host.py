"""The host's pages (/ui #/host, api/ui/host.js) end to end in headless Chromium.

The API runs for real (uvicorn on a free port, PostgreSQL); a programme with a
self-assessment questionnaire is created through the API, a cycle with two
site visits hosted by Växa is on the log, and the peers' mined statements
about the past visit are in the statements table (as the miner leaves them;
mining itself is tested elsewhere). With Växa's partner key the page: fills
in and submits the self-assessment of the coming visit, opens the past
visit's feedback and acknowledges it, turns a Polish recommendation into an
action item, and records progress on it. Each step is checked through the
API too. Screenshots go to ``PEERLEARN_UI_SHOTS`` (default /tmp/screens).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from auth_helpers import bearer

from peerlearn import eventstore, feedback
from peerlearn.events import EventType
from peerlearn.keys import create_key
from peerlearn.settings import Settings
from service.ports import free_port
from workflows.types import workflow_id_for

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")

QUESTIONS: list[dict[str, Any]] = [
    {"id": "support", "text": "How do you support SMEs today?", "type": "text"},
    {"id": "maturity", "text": "How mature is your internationalisation?", "type": "scale"},
    {"id": "focus", "text": "Main focus", "type": "choice", "choices": ["energy", "food"]},
]
# the peers' statements about the past visit (organisation, language, kind, text)
STATEMENTS = [
    ("lodz", "pl", "success", "Program mentorski dla MŚP działa bardzo dobrze."),
    ("graz", "de", "challenge", "Die Beratung erreicht kaum Unternehmen auf dem Land."),
    ("lodz", "pl", "recommendation", "Warto otworzyć punkt doradczy w mniejszych gminach."),
    ("graz", "en", "recommendation", "Publish the mentoring results once a year."),
]

GLOSS_TEXT = "Advisory offices in small municipalities reach rural firms."


class _Server:
    """uvicorn in a thread with its own event loop: the browser needs a real socket."""

    def __init__(self, settings: Settings) -> None:
        import uvicorn

        from api.main import create_app

        self.port = free_port()
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    settings = Settings(
        database_url=database_url,
        home=tmp_path_factory.mktemp("ui-host-home"),
        temporal_address=f"127.0.0.1:{free_port()}",  # nothing there: reads fall back
        load_demo=False,
    )
    with _Server(settings) as srv:
        yield srv


async def _seed_cycle(database_url: str, pid: str, cid: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)

    def visit(mid: str, title: str, start: datetime) -> dict[str, Any]:
        return {
            "meeting_id": mid, "kind": "site_visit", "title": title, "host": "vaxa",
            "format": "on_site", "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=6)).isoformat(),
            "topics": [], "target_groups": [], "participants": [],
        }  # fmt: skip

    past, coming = now - timedelta(days=20), now + timedelta(days=30)
    async with await psycopg.AsyncConnection.connect(database_url) as conn, conn.transaction():
        await eventstore.append(
            conn, stream_id=cid, type=EventType.CYCLE_STARTED,
            payload={
                "programme_id": pid, "workflow_id": workflow_id_for(cid),
                "title": "Peer review 2031", "time_zone": "Europe/Stockholm",
                "partners": ["vaxa", "lodz", "graz"],
                "ends_at": (now + timedelta(days=200)).isoformat(), "policies": {},
                "meetings": [visit("visit-0", "Visit at Växa (spring)", past),
                             visit("visit-1", "Visit at Växa (autumn)", coming)],
                "phase": "kickoff",
            },
            idempotency_key=f"{cid}:start", occurred_at=now - timedelta(days=40),
        )  # fmt: skip
        await eventstore.append(
            conn, stream_id=cid, type=EventType.MEETING_HELD,
            payload={"meeting_id": "visit-0", "held_at": past.isoformat(),
                     "notes_due_at": (past + timedelta(days=7)).isoformat(),
                     "phase": "meetings"},
            idempotency_key=f"{cid}:held", occurred_at=past,
        )  # fmt: skip
        for i, (org, lang, kind, text) in enumerate(STATEMENTS):
            await conn.execute(
                "INSERT INTO statements (id, note_id, position, programme_id, cycle_id,"
                " meeting_id, organisation_id, text, language, kind, content_hash)"
                " VALUES (%s, %s, 0, %s, %s, 'visit-0', %s, %s, %s, %s, %s)",
                (f"{cid}-s{i}", f"{cid}-n{i}", pid, cid, org, text, lang, kind, f"h{cid}{i}"),
            )
        # the Polish recommendation's English gloss: a similar statement of its theme
        await conn.execute(
            "INSERT INTO statements (id, note_id, position, programme_id, cycle_id,"
            " meeting_id, organisation_id, text, language, kind, content_hash, theme_id)"
            " VALUES (%s, %s, 0, %s, %s, 'visit-1', 'graz', %s, 'en', 'lesson', %s, %s)",
            (f"{cid}-en", f"{cid}-nen", pid, cid, GLOSS_TEXT, f"h{cid}en", f"t-{cid}"),
        )
        await conn.execute(
            "UPDATE statements SET theme_id = %s WHERE id = %s", (f"t-{cid}", f"{cid}-s2")
        )
        await conn.execute(
            "INSERT INTO statement_glosses (statement_id, rank, english_statement_id,"
            " similarity, theme_id) VALUES (%s, 1, %s, 0.71, %s)",
            (f"{cid}-s2", f"{cid}-en", f"t-{cid}"),
        )
        r = await eventstore.append(
            conn, stream_id=cid, type=EventType.NOTE_WINDOW_CLOSED,
            payload={"meeting_id": "visit-0", "note_count": 2, "expected": 2,
                     "phase": "meetings"},
            idempotency_key=f"{cid}:closed", occurred_at=past + timedelta(days=7),
        )  # fmt: skip
        (fb_row,) = [o for o in r.outbox_ids if o.endswith(":feedback")]
        # what the feedback e-mail's delivery does first: compile and store it once
        await feedback.ensure_summary(conn, cid, "visit-0", "vaxa", fb_row)


def test_host_fills_self_assessment_reads_feedback_and_plans(
    server: _Server, database_url: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = Path(os.environ.get("PEERLEARN_UI_SHOTS") or "/tmp/screens")
    shots.mkdir(parents=True, exist_ok=True)
    _, admin = create_key(database_url, "admin", name="ui-host-admin")
    api = httpx.Client(base_url=server.url, timeout=30, headers=bearer(admin))
    pid, cid = "h-" + uuid.uuid4().hex[:6], "hc-" + uuid.uuid4().hex[:6]
    r = api.post("/v1/programmes", json={
        "id": pid, "name": "Rural SME support", "time_zone": "Europe/Stockholm",
        "languages": ["sv", "pl", "de", "en"], "self_assessment_questions": QUESTIONS,
        "partners": [{"id": "vaxa", "name": "Växa", "country": "SE"},
                     {"id": "lodz", "name": "Łódź Region", "country": "PL"},
                     {"id": "graz", "name": "Graz Agency", "country": "AT"}],
    })  # fmt: skip
    assert r.status_code == 201, r.text
    asyncio.run(_seed_cycle(database_url, pid, cid))
    _, host_key = create_key(database_url, "partner", [pid], organisation="vaxa")

    expect.set_options(timeout=20_000)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 500 else None
        )
        try:
            page.goto(f"{server.url}/ui/")
            page.evaluate("k => localStorage.setItem('peerlearn.apiKey', k)", host_key)
            page.goto(f"{server.url}/ui/#/host")
            page.reload()
            expect(page.locator('[data-nav="host"]')).to_be_visible()

            # ---- the coming visit: the self-assessment form ----
            expect(page.locator("body")).to_have_attribute("data-host-ready", f"{cid}/visit-1")
            form = page.locator("#host-sa-form")
            form.locator('select[name="language"]').select_option("sv")
            form.locator('textarea[name="q_support"]').fill(
                "Vi har ett mentorprogram för småföretag på landsbygden."
            )
            form.locator('select[name="q_maturity"]').select_option("3")
            form.locator('select[name="q_focus"]').select_option("food")
            page.click("#host-sa-save")
            expect(page.locator("#host-page [data-flash]")).to_have_text("Self-assessment saved.")
            page.screenshot(path=str(shots / "host-01-self-assessment.png"), full_page=True)
            sa = api.get(f"/v1/cycles/{cid}/meetings/visit-1/self-assessment").json()
            assert sa["language"] == "sv" and sa["submitted_by"]
            assert {a["question_id"]: a["value"] for a in sa["answers"]} == {
                "support": "Vi har ett mentorprogram för småföretag på landsbygden.",
                "maturity": 3,
                "focus": "food",
            }

            # ---- the past visit: feedback, acknowledged ----
            page.select_option("#host-meeting", f"{cid}/visit-0")
            expect(page.locator("body")).to_have_attribute("data-host-ready", f"{cid}/visit-0")
            fb = page.locator("#host-feedback")
            expect(fb.locator(".fb-recommendations .fb-item")).to_have_count(2)
            expect(fb.locator(".fb-strengths .fb-item")).to_contain_text("Program mentorski")
            expect(fb.locator(".fb-challenges .fb-item")).to_contain_text("auf dem Land")
            polish_rec = fb.locator(".fb-recommendations .fb-item", has_text="punkt doradczy")
            expect(polish_rec.locator(".gloss")).to_contain_text(GLOSS_TEXT)
            expect(polish_rec.locator(".gloss")).to_contain_text("not a translation")
            fb.locator("#host-fb-note").fill("Tack, vi tar med oss rekommendationerna.")
            page.click("#host-fb-ack")
            expect(page.locator("#host-fb-acknowledged")).to_contain_text("Tack, vi tar")
            page.locator("#host-feedback").screenshot(path=str(shots / "host-02-feedback.png"))
            got = api.get(f"/v1/cycles/{cid}/meetings/visit-0/feedback").json()
            assert got["acknowledged_at"] and got["acknowledgement_note"].startswith("Tack")
            (rec,) = [i for i in got["recommendations"] if i["language"] == "pl"]
            assert rec["gloss"]["english_text"] == GLOSS_TEXT
            assert all(i["gloss"] is None for i in got["strengths"] + got["challenges"])

            # ---- the action plan: a Polish recommendation becomes an item ----
            plan = page.locator("#host-action-plan")
            polish = plan.locator(".suggestion", has_text="punkt doradczy")
            polish.locator(".use-suggestion").click()
            expect(page.locator("#host-new-rec")).to_contain_text("punkt doradczy")
            page.fill("#host-new-what", "Öppna en rådgivningspunkt i två mindre kommuner.")
            due = (datetime.now(UTC) + timedelta(days=90)).date().isoformat()
            page.fill("#host-new-due", due)
            page.click("#host-add-item")
            expect(page.locator("#host-page [data-flash]")).to_have_text("Action item added.")
            row = page.locator("#host-items .action-item")
            expect(row).to_have_count(1)
            expect(row).to_contain_text("Answers: “Warto otworzyć")
            # progress: in progress, with a note
            row.locator('select[name="status"]').select_option("in_progress")
            row.locator('input[name="note"]').fill("Lokaler hittade i Vännäs.")
            row.locator(".item-save").click()
            expect(page.locator("#host-page [data-flash]")).to_have_text("Action item updated.")
            expect(page.locator("#host-items .action-item.status-in_progress")).to_contain_text(
                "Lokaler hittade i Vännäs."
            )
            expect(plan.locator(".suggestion", has_text="punkt doradczy")).to_contain_text(
                "answered by 1 item"
            )
            page.locator("#host-action-plan").screenshot(
                path=str(shots / "host-03-action-plan.png")
            )
            page.screenshot(path=str(shots / "host-04-page.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(shots / "host-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
    items = api.get(f"/v1/cycles/{cid}/action-items").json()["items"]
    assert len(items) == 1
    (item,) = items
    assert item["owner"] == "vaxa" and item["status"] == "in_progress"
    assert item["due_at"].startswith(due) and item["meeting_id"] == "visit-0"
    assert item["recommendation"]["statement_id"] == f"{cid}-s2"
    assert [p["note"] for p in item["progress"] if p.get("note")] == ["Lokaler hittade i Vännäs."]
    assert errors == [], errors
