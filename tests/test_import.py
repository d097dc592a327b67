"""Importing past programmes over HTTP on the real stack (PostgreSQL, a
Temporal dev server): a good file becomes a programme, completed cycles with
their real dates and notes, and a mining run; the same file again (as JSONL or
as CSV) changes nothing; a grown file adds only what is new; every kind of bad
line is reported with its number and nothing is written."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString

import httpx
import pytest
import pytest_asyncio
from auth_helpers import admin_headers, api_client, key_headers
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from peerlearn import eventstore, importer
from peerlearn.events import EventType
from peerlearn.settings import Settings
from workflows.mining import workflow_id_for_run

NDJSON = {"Content-Type": "application/x-ndjson"}


class Ctx:
    client: httpx.AsyncClient
    pool: AsyncConnectionPool
    database_url: str
    env: WorkflowEnvironment


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def ctx(
    temporal_env: WorkflowEnvironment, pool: AsyncConnectionPool, database_url: str
) -> AsyncIterator[Ctx]:
    c = Ctx()
    c.pool, c.database_url, c.env = pool, database_url, temporal_env
    settings = Settings(
        database_url=database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        task_queue="import-" + uuid.uuid4().hex[:6],
        load_demo=False,
        max_note_chars=2000,
    )
    async with api_client(create_app(settings), admin_headers(database_url)) as client:
        c.client = client
        yield c


def _history(pid: str) -> list[dict[str, Any]]:
    """Two cycles a year apart, three meetings, five notes in en, sv and pl."""
    base = {"programme_id": pid, "programme_name": "Baltic clusters (history)"}
    c1 = {**base, "cycle_id": f"{pid}-2023", "cycle_title": "Resilience 2023"}
    c2 = {**base, "cycle_id": f"{pid}-2024", "cycle_title": "Growth 2024"}
    return [
        {
            **c1,
            "meeting_id": "kickoff",
            "meeting_kind": "kickoff",
            "meeting_date": "2023-02-01",
            "host": "",
            "author_organisation": "vaxa",
            "language": "en",
            "text": "Members stayed engaged through weekly online coffee meetings.",
            "submitted_at": "2023-02-03T09:30:00+01:00",
        },
        {
            **c1,
            "meeting_id": "visit-1",
            "meeting_kind": "site_visit",
            "meeting_date": "2023-05-10T10:00:00Z",
            "host": "vaxa",
            "author_organisation": "lodz",
            "language": "pl",
            "text": "Klaster organizuje spotkania kojarzące firmy z naukowcami co kwartał.",
        },
        {
            **c1,
            "meeting_id": "visit-1",
            "meeting_kind": "site_visit",
            "meeting_date": "2023-05-10T10:00:00Z",
            "host": "vaxa",
            "author_organisation": "umea",
            "text": "Vi såg hur klustret matchar företag med forskare och det fungerade bra.",
        },
        {
            **c2,
            "meeting_id": "webinar-1",
            "meeting_kind": "webinar",
            "meeting_date": "2024-03-12",
            "host": None,
            "author_organisation": "vaxa",
            "language": "en",
            "text": "## Funding\n- Diversify funding beyond public grants\n- Charge for services",
        },
        {
            **c2,
            "meeting_id": "webinar-1",
            "meeting_kind": "webinar",
            "meeting_date": "2024-03-12",
            "author_organisation": "lodz",
            "language": "pl",
            "text": "Składki członkowskie pokrywają jedną trzecią budżetu klastra.",
        },
    ]


def _jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def _csv(rows: list[dict[str, Any]]) -> bytes:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=importer.COLUMNS)
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k, "")) for k in importer.COLUMNS})
    return buf.getvalue().encode()


async def _rows(c: Ctx, sql: LiteralString, *params: Any) -> list[dict[str, Any]]:
    async with c.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


async def _event_count(c: Ctx) -> int:
    return int((await _rows(c, "SELECT count(*) AS n FROM events"))[0]["n"])


async def test_good_file_then_same_file_again_then_grown_file(ctx: Ctx) -> None:
    c = ctx
    pid = "hist-" + uuid.uuid4().hex[:6]
    manager = key_headers(c.database_url, "manager", ["some-other-programme"])
    rows = _history(pid)
    r = await c.client.post("/v1/imports", content=_jsonl(rows), headers={**manager, **NDJSON})
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["changed"] is True and out["lines"] == 5 and out["programme_ids"] == [pid]
    assert out["created"] == {
        "programmes": 1,
        "partners": 3,
        "cycles": 2,
        "meetings": 3,
        "notes": 5,
    }
    assert len(out["mining_runs"]) == 1
    # the run was started as a ThemeMining workflow over the programme
    desc = await c.env.client.get_workflow_handle(
        workflow_id_for_run(out["mining_runs"][0])
    ).describe()
    assert desc.workflow_type == "ThemeMining"

    # the manager who imported a new programme may now read it
    r = await c.client.get(f"/v1/programmes/{pid}", headers=manager)
    assert r.status_code == 200
    assert sorted(p["id"] for p in r.json()["partners"]) == ["lodz", "umea", "vaxa"]

    # completed cycles, marked imported, with their real dates
    cycles = await _rows(c, "SELECT * FROM cycles WHERE programme_id = %s ORDER BY created_at", pid)
    assert [(x["id"], x["status"], x["phase"]) for x in cycles] == [
        (f"{pid}-2023", "completed", "completed"),
        (f"{pid}-2024", "completed", "completed"),
    ]
    assert all(x["workflow_id"].startswith("import:") for x in cycles)
    assert cycles[0]["created_at"] == datetime(2023, 2, 1, 12, tzinfo=UTC)
    meetings = await _rows(
        c, "SELECT id, state, held_at FROM meetings WHERE cycle_id = %s ORDER BY id", f"{pid}-2023"
    )
    assert [(m["id"], m["state"]) for m in meetings] == [("kickoff", "held"), ("visit-1", "held")]
    assert meetings[1]["held_at"] == datetime(2023, 5, 10, 12, tzinfo=UTC)
    notes = await _rows(c, "SELECT * FROM notes WHERE programme_id = %s ORDER BY submitted_at", pid)
    assert [n["submitted_at"].year for n in notes] == [2023, 2023, 2023, 2024, 2024]
    assert notes[0]["submitted_at"] == datetime(2023, 2, 3, 8, 30, tzinfo=UTC)
    assert {n["language"] for n in notes} == {"en", "pl", "sv"}  # sv detected
    types = [e.type for e in await _read_stream(c, f"{pid}-2023")]
    assert types[0] == EventType.CYCLE_STARTED and types[-1] == EventType.CYCLE_COMPLETED
    assert types.count(EventType.MEETING_HELD) == 2 and types.count(EventType.NOTES_SUBMITTED) == 3
    events = await _read_stream(c, f"{pid}-2023")
    assert all(e.payload["imported"] is True for e in events)
    assert [e.occurred_at for e in events] == sorted(e.occurred_at for e in events)
    assert events[-1].occurred_at.year == 2023
    # the read side answers for an imported cycle (no workflow behind it)
    r = await c.client.get(f"/v1/cycles/{pid}-2023")
    assert r.status_code == 200 and r.json()["status"] == "completed"

    # the same file again, as JSONL and as CSV: nothing changes
    before = await _event_count(c)
    for body, ctype in ((_jsonl(rows), NDJSON), (_csv(rows), {"Content-Type": "text/csv"})):
        r = await c.client.post("/v1/imports", content=body, headers={**manager, **ctype})
        assert r.status_code == 200, r.text
        again = r.json()
        assert again["changed"] is False and again["import_id"] == out["import_id"]
        assert set(again["created"].values()) == {0} and again["mining_runs"] == []
    assert await _event_count(c) == before
    r = await c.client.get(f"/v1/imports/{out['import_id']}", headers=manager)
    assert r.status_code == 200 and r.json()["mining_run_id"] == out["mining_runs"][0]
    r = await c.client.get("/v1/imports", headers=manager)
    assert out["import_id"] in [i["id"] for i in r.json()["items"]]
    stranger = key_headers(c.database_url, "manager", ["elsewhere"])
    r = await c.client.get("/v1/imports", headers=stranger)
    assert r.status_code == 200 and out["import_id"] not in [i["id"] for i in r.json()["items"]]
    r = await c.client.get(f"/v1/imports/{out['import_id']}", headers=stranger)
    assert r.status_code == 404

    # a grown file (multipart upload): only the new meeting, partner and note
    grown = [
        *rows,
        {
            **rows[3],
            "meeting_id": "visit-2",
            "meeting_kind": "site_visit",
            "meeting_date": "2024-06-01",
            "host": "tartu",
            "author_organisation": "tartu",
            "language": "en",
            "text": "The host runs a voucher scheme for first projects with universities.",
        },
    ]
    r = await c.client.post(
        "/v1/imports", files={"file": ("history.jsonl", _jsonl(grown))}, headers=manager
    )
    assert r.status_code == 201, r.text
    assert r.json()["created"] == {
        "programmes": 0,
        "partners": 1,
        "cycles": 0,
        "meetings": 1,
        "notes": 1,
    }
    assert await _event_count(c) == before + 4  # partner update, scheduled, held, note
    cyc = (await _rows(c, "SELECT status, phase FROM cycles WHERE id = %s", f"{pid}-2024"))[0]
    assert cyc == {"status": "completed", "phase": "completed"}


async def _read_stream(c: Ctx, stream: str) -> list[eventstore.Event]:
    async with c.pool.connection() as conn:
        return await eventstore.read_stream(conn, stream)


async def test_every_kind_of_bad_line_is_reported_and_nothing_written(ctx: Ctx) -> None:
    c = ctx
    pid = "bad-" + uuid.uuid4().hex[:6]
    good = _history(pid)[0]
    future = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
    lines: list[str] = [
        json.dumps(good),  # 1: fine
        "{not json",  # 2
        json.dumps([1, 2]),  # 3
        json.dumps({**good, "text": None, "meeting_id": "m3"}),  # 4
        json.dumps({**good, "author_organisation": "bad id!", "text": "x" * 30}),  # 5
        json.dumps({**good, "meeting_kind": "party", "meeting_id": "m6"}),  # 6
        json.dumps({**good, "meeting_date": future, "meeting_id": "m7"}),  # 7
        json.dumps({**good, "meeting_date": "1970-01-01", "meeting_id": "m8"}),  # 8
        json.dumps({**good, "meeting_date": "last spring", "meeting_id": "m9"}),  # 9
        json.dumps({**good, "submitted_at": "2023-01-01", "text": "Early note here."}),  # 10
        json.dumps({**good, "language": "english!", "text": "Another note here."}),  # 11
        json.dumps({**good, "meeting_kind": "site_visit", "meeting_id": "v", "host": ""}),  # 12
        json.dumps({**good, "programme_name": "Other name", "text": "Third note here."}),  # 13
        json.dumps({**good, "meeting_date": "2023-02-02", "text": "Fourth note here."}),  # 14
        json.dumps(good),  # 15: the same note as line 1
        json.dumps({**good, "colour": "red", "text": "Fifth note here."}),  # 16
        json.dumps({**good, "text": "   ", "meeting_id": "m17"}),  # 17
        json.dumps({**good, "text": "y " * 1500, "meeting_id": "m18"}),  # 18
        json.dumps({**good, "cycle_id": 7, "text": "Sixth note here."}),  # 19
        json.dumps({**good, "author_person": "Anna\nBerg", "text": "Seventh note."}),  # 20
        json.dumps({**good, "author_person": "A" * 201, "text": "Eighth note."}),  # 21
    ]
    body = ("\n".join(lines) + "\n").encode()
    before = await _event_count(c)
    r = await c.client.post("/v1/imports", content=body, headers=NDJSON)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    errors = {e["line"]: e["reason"] for e in r.json()["errors"]}
    expected = {
        2: "not valid JSON",
        3: "must be a JSON object",
        4: "text is missing",
        5: "author_organisation 'bad id!' is not an id",
        6: "meeting_kind 'party' is not one of",
        7: "in the future",
        8: "is before 1990",
        9: "not an ISO date",
        10: "submitted_at is before the meeting",
        11: "not a language code",
        12: "a site_visit needs a host",
        13: "programme_name differs from line 1",
        14: "another kind, date or host on line 1",
        15: "the same note as line 1",
        16: "unknown field(s) colour",
        17: "text is missing",
        18: "longer than 2000 characters",
        19: "cycle_id must be a string",
        20: "author_person: a name is one line",
        21: "author_person is longer than 200 characters",
    }
    assert sorted(errors) == sorted(expected), errors
    for line, words in expected.items():
        assert words in errors[line], (line, errors[line])
    assert await _event_count(c) == before
    assert await _rows(c, "SELECT id FROM programmes WHERE id = %s", pid) == []


async def test_file_level_problems(ctx: Ctx) -> None:
    c = ctx
    pid = "csv-" + uuid.uuid4().hex[:6]
    rows = _history(pid)[:1]
    # a CSV without the text column, one with too many cells, one in Latin-1
    no_text = _csv(rows).decode().replace(",text,", ",body,").encode()
    r = await c.client.post("/v1/imports", content=no_text, headers={"Content-Type": "text/csv"})
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"line": 1, "reason": "missing column(s) text; unknown column(s) body"}
    ]
    extra = _csv(rows) + b"a,b,c,d,e,f,g,h,i,j,k,l,m,n\n"
    r = await c.client.post("/v1/imports", content=extra, headers={"Content-Type": "text/csv"})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"line": 3, "reason": "more cells than the header has columns"}]
    latin = _csv(rows).decode().replace("engaged", "engagéd").encode("latin-1")
    r = await c.client.post("/v1/imports", content=latin, headers={"Content-Type": "text/csv"})
    assert r.status_code == 422 and "not valid UTF-8" in r.json()["errors"][0]["reason"]
    r = await c.client.post("/v1/imports", content=b"", headers=NDJSON)
    assert r.status_code == 422
    r = await c.client.post("/v1/imports", content=b"x", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415


async def test_clash_with_a_live_cycle_and_who_may_import(ctx: Ctx) -> None:
    c = ctx
    pid = "live-" + uuid.uuid4().hex[:6]
    # a live programme and cycle, written as the API and the workflow write them
    async with c.pool.connection() as conn, conn.transaction():
        await eventstore.append(
            conn,
            stream_id=eventstore.programme_stream(pid),
            type=EventType.PROGRAMME_CREATED,
            payload={
                "id": pid,
                "name": "Live",
                "time_zone": "Europe/Warsaw",
                "partners": [{"id": "vaxa", "name": "Växa", "country": "SE", "kind": "cluster"}],
                "languages": ["en"],
            },
            idempotency_key=f"test:{pid}",
            occurred_at=datetime.now(UTC),
        )
        await eventstore.append(
            conn,
            stream_id=f"{pid}-2023",
            type=EventType.CYCLE_STARTED,
            payload={
                "programme_id": pid,
                "workflow_id": f"cycle-{pid}-2023",
                "title": "Live cycle",
                "phase": "kickoff",
                "time_zone": "Europe/Warsaw",
                "partners": ["vaxa"],
                "policies": {},
                "ends_at": (datetime.now(UTC) + timedelta(days=90)).isoformat(),
                "meetings": [],
            },
            idempotency_key=f"test:{pid}:cycle",
            occurred_at=datetime.now(UTC),
        )
    rows = _history(pid)
    r = await c.client.post("/v1/imports", content=_jsonl(rows), headers=NDJSON)
    assert r.status_code == 422
    reasons = {e["line"]: e["reason"] for e in r.json()["errors"]}
    assert reasons == {n: f"cycle '{pid}-2023' exists and was not imported" for n in (1, 2, 3)}

    rows24 = [r for r in rows if r["cycle_id"].endswith("2024")]
    body = _jsonl(rows24)
    for role, grant in (("analyst", [pid]), ("partner", [pid]), ("manager", ["elsewhere"])):
        headers = key_headers(
            c.database_url, role, grant, organisation="vaxa" if role == "partner" else None
        )
        r = await c.client.post("/v1/imports", content=body, headers={**headers, **NDJSON})
        assert r.status_code in (403, 404), (role, r.text)
    assert await _rows(c, "SELECT id FROM cycles WHERE id = %s", f"{pid}-2024") == []
    # a manager of the programme may; the programme keeps its zone and gains partners
    mgr = key_headers(c.database_url, "manager", [pid])
    r = await c.client.post("/v1/imports", content=body, headers={**mgr, **NDJSON})
    assert r.status_code == 201, r.text
    assert r.json()["created"]["partners"] == 1  # lodz (vaxa was there)
    cyc = await _rows(c, "SELECT time_zone FROM cycles WHERE id = %s", f"{pid}-2024")
    assert cyc == [{"time_zone": "Europe/Warsaw"}]


def test_cli_import_good_again_and_bad(database_url: str, tmp_path: Any) -> None:
    """``peerlearn import --file F``: the same path from the command line."""
    import os
    import subprocess
    import sys

    pid = "cli-" + uuid.uuid4().hex[:6]
    good = tmp_path / "history.jsonl"
    good.write_bytes(_jsonl(_history(pid)))
    bad = tmp_path / "bad.csv"
    bad.write_bytes(_csv(_history(pid)[:1]) + b"x,y\n")
    env = {**os.environ, "DATABASE_URL": database_url, "PEERLEARN_HOME": str(tmp_path / "state")}

    def run(path: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service.cli", "import", "--file", str(path), "--no-mining"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = run(good)
    assert first.returncode == 0, first.stderr
    assert "created 1 programmes, 3 partners, 2 cycles, 3 meetings, 5 notes" in first.stdout
    again = run(good)
    assert again.returncode == 0 and "nothing changed" in again.stdout
    wrong = run(bad)
    assert wrong.returncode == 1
    assert f"{bad}:3:" in wrong.stderr and "nothing was imported" in wrong.stderr


async def test_the_demo_history_imports_into_the_demo_programme(ctx: Ctx) -> None:
    """service/demo_data/history.jsonl: four cycles 2023-2025 in en, sv, pl, de,
    all partners already in the demo programme (so none is invented)."""
    from importlib import resources

    from service.demo import _programme_body, demo_data

    c = ctx
    prog = demo_data()["programme"]
    async with c.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT 1 FROM programmes WHERE id = %s", (prog["id"],))
        exists = await cur.fetchone()
    if exists is None:
        r = await c.client.post("/v1/programmes", json=_programme_body(prog))
        assert r.status_code == 201, r.text
    history = resources.files("service.demo_data").joinpath("history.jsonl").read_bytes()
    r = await c.client.post("/v1/imports?mine=false", content=history, headers=NDJSON)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["created"] == {
        "programmes": 0,
        "partners": 0,
        "cycles": 4,
        "meetings": 13,
        "notes": 52,
    }
    assert out["mining_runs"] == []
    rows = await _rows(
        c,
        "SELECT extract(year FROM submitted_at)::int AS year, language, count(*) AS n"
        " FROM notes WHERE programme_id = %s GROUP BY 1, 2 ORDER BY 1, 2",
        prog["id"],
    )
    years = {r["year"] for r in rows}
    assert years == {2023, 2024, 2025}
    assert {r["language"] for r in rows} == {"en", "sv", "pl", "de"}
    r = await c.client.post("/v1/imports", content=history, headers=NDJSON)
    assert r.status_code == 200 and r.json()["changed"] is False


@pytest.mark.parametrize(
    ("text", "words"),
    [("a\x00b note", "NUL character"), ("bell \x07 note", "control character U+0007")],
)
async def test_control_characters_go_through_the_note_text_rule(
    ctx: Ctx, text: str, words: str
) -> None:
    """The note-text rule of every note body (api.limits.validate_note_text)
    applies to imported lines: reported with the line, nothing written."""
    pid = "ctl-" + uuid.uuid4().hex[:6]
    row = {**_history(pid)[0], "text": text}
    r = await ctx.client.post("/v1/imports", content=_jsonl([row]), headers=NDJSON)
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["line"] == 1 and words in error["reason"]
    assert await _rows(ctx, "SELECT id FROM programmes WHERE id = %s", pid) == []


async def test_an_import_is_mined_with_its_real_dates(
    ctx: Ctx, model_dir: Any, temporal_env: WorkflowEnvironment
) -> None:
    """The whole path: POST /v1/imports starts ThemeMining over the programme;
    its reconciliation step mines the imported notes (no cycle workflow ever
    saw them), and their statements carry the meetings' dates, so trends span
    the years the history covers."""
    from mining_support import mining_settings
    from temporalio.worker import Worker

    from activities.mining import MiningActivities
    from peerlearn.mining import miner as miners
    from workflows.mining import MiningProgress, ThemeMining

    c = ctx
    settings = mining_settings(model_dir, c.database_url)
    await miners.get_miner_async(settings)
    acts = MiningActivities(c.pool, settings)
    api_settings = Settings(
        database_url=c.database_url,
        temporal_address=temporal_env.client.service_client.config.target_host,
        task_queue=settings.task_queue,
        load_demo=False,
    )
    pid = "mined-" + uuid.uuid4().hex[:6]
    async with (
        Worker(
            temporal_env.client,
            task_queue=settings.task_queue,
            workflows=[ThemeMining],
            activities=acts.all(),
        ),
        api_client(create_app(api_settings), admin_headers(c.database_url)) as client,
    ):
        r = await client.post("/v1/imports", content=_jsonl(_history(pid)), headers=NDJSON)
        assert r.status_code == 201, r.text
        [run_id] = r.json()["mining_runs"]
        progress = await temporal_env.client.get_workflow_handle(
            workflow_id_for_run(run_id), result_type=MiningProgress
        ).result()
    assert progress.status == "completed"
    rows = await _rows(
        c,
        "SELECT n.id, count(s.id) AS statements, min(s.source_date) AS day"
        " FROM notes n LEFT JOIN statements s ON s.note_id = n.id"
        " WHERE n.programme_id = %s GROUP BY n.id",
        pid,
    )
    assert len(rows) == 5 and all(r["statements"] >= 1 for r in rows), rows
    assert {r["day"].year for r in rows} == {2023, 2024}
