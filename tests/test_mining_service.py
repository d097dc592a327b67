"""Mining inside the service, on real PostgreSQL + pgvector, Temporal and the model:
incremental assignment on note submission, the ThemeMining workflow with its
progress query, stable theme ids across runs, change events, the schedule."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_asyncio
from mining_support import ingest_fixture, load_jsonl, mine_directly, mining_settings, note_meta
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client, ScheduleActionStartWorkflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.mining import MiningActivities
from nlp.types import NoteIn
from peerlearn.mining import miner as miners
from peerlearn.settings import Settings
from service.mining_schedule import ensure_mining_schedule, ensure_reconcile_schedule
from workflows.mining import (
    NOTE_RECONCILIATION,
    PROGRESS_QUERY,
    SCHEDULE_ID,
    THEME_MINING,
    MiningProgress,
    NoteReconciliation,
    ReconcileInput,
    ReconcileOutput,
    ThemeMining,
    ThemeMiningInput,
    workflow_id_for_run,
)


@pytest.fixture(scope="module")
def settings(model_dir: Path, database_url: str) -> Settings:
    return mining_settings(model_dir, database_url)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def acts(pool: AsyncConnectionPool, settings: Settings) -> MiningActivities:
    await miners.get_miner_async(settings)  # the model, once per process
    return MiningActivities(pool, settings)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def worker(
    temporal_env: WorkflowEnvironment, acts: MiningActivities, settings: Settings
) -> AsyncIterator[Client]:
    async with Worker(
        temporal_env.client,
        task_queue=settings.task_queue,
        workflows=[ThemeMining, NoteReconciliation],
        activities=acts.all(),
    ):
        yield temporal_env.client


async def _rows(pool: AsyncConnectionPool, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(sql, params)
        return [dict(r) for r in await cur.fetchall()]


async def test_notes_before_first_mining_wait_unassigned(
    acts: MiningActivities, pool: AsyncConnectionPool
) -> None:
    n = await ingest_fixture(acts)
    rows = await _rows(pool, "SELECT language, theme_id FROM statements")
    assert len(rows) == n >= 30
    assert {r["language"] for r in rows} >= {"en", "sv", "pl"}
    assert all(r["theme_id"] is None for r in rows)
    hashes = await _rows(pool, "SELECT count(*) AS n FROM embeddings")
    distinct = await _rows(pool, "SELECT count(DISTINCT content_hash) AS n FROM statements")
    assert hashes[0]["n"] == distinct[0]["n"]


async def test_theme_mining_workflow_progress_and_cross_lingual_theme(
    worker: Client, pool: AsyncConnectionPool, settings: Settings
) -> None:
    run_id = "run-" + uuid.uuid4().hex[:6]
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO mining_runs (id, scope) VALUES (%s, 'all')", (run_id,))
        await conn.commit()
    handle = await worker.start_workflow(
        THEME_MINING,
        ThemeMiningInput(run_id=run_id, batch_size=16, parallelism=2),
        id=workflow_id_for_run(run_id),
        task_queue=settings.task_queue,
        result_type=MiningProgress,
    )
    early = await handle.query(PROGRESS_QUERY, result_type=MiningProgress)
    assert early.run_id == run_id and early.stage in {"loading", "encoding", "clustering", "done"}
    result = await handle.result()
    assert result.status == "completed" and result.stage == "done"
    assert result.total > 0 and result.done == result.total
    assert result.batches_done == result.batches_total >= 2
    assert result.theme_count and result.theme_count >= 2
    assert any(c["kind"] == "new" for c in result.changes)
    final = await handle.query(PROGRESS_QUERY, result_type=MiningProgress)
    assert final.done == final.total
    run = (await _rows(pool, "SELECT * FROM mining_runs WHERE id = %s", run_id))[0]
    assert run["status"] == "completed" and run["done"] == run["total"] == result.total
    # at least one theme holds English, Swedish and Polish statements
    langs = await _rows(
        pool,
        "SELECT theme_id, array_agg(DISTINCT language) AS langs FROM statements"
        " WHERE theme_id IS NOT NULL GROUP BY theme_id",
    )
    assert any({"en", "sv", "pl"} <= set(r["langs"]) for r in langs), langs
    model = await _rows(pool, "SELECT scope FROM theme_models")
    assert model == [{"scope": "all"}]
    practices = await _rows(pool, "SELECT * FROM theme_practices")
    kinds = await _rows(
        pool, "SELECT kind, count(*) AS n, count(theme_id) AS t FROM statements GROUP BY kind"
    )
    assert practices and all(p["statement_ids"] for p in practices), kinds


async def test_note_submission_assigns_existing_themes(
    acts: MiningActivities, pool: AsyncConnectionPool
) -> None:
    before = await _rows(pool, "SELECT count(*) AS n FROM embeddings")
    note = NoteIn(
        id="late-1",
        language="en",
        programme="greentech",
        cycle="gt-2",
        meeting="m6",
        organisation="east-agency",
        date="2024-12-01",
        text="- In the crisis we kept members engaged with weekly online coffee meetings.\n"
        "- Solar panels on the roofs of schools lowered the city's electricity bills.",
    )
    out = await acts.ingest_note(note)
    assert out.statement_count == 2
    assert out.theme_ids and out.unassigned == 0
    rows = await _rows(pool, "SELECT theme_id FROM statements WHERE note_id = 'late-1'")
    assert all(r["theme_id"] in out.theme_ids for r in rows)
    # the same note again encodes nothing new: the pgvector cache answers
    miner = await miners.get_miner_async(acts.settings)
    stmts = miner.segment([note])
    _, encoded = await miners.embed_statements(pool, miner, stmts)
    assert encoded == 0
    after = await _rows(pool, "SELECT count(*) AS n FROM embeddings")
    assert after[0]["n"] == before[0]["n"] + 2


async def test_remining_keeps_theme_ids_and_records_changes(
    acts: MiningActivities, pool: AsyncConnectionPool
) -> None:
    old = {r["id"] for r in await _rows(pool, "SELECT id FROM themes WHERE retired_at IS NULL")}
    old_assign = {
        r["id"]: r["theme_id"] for r in await _rows(pool, "SELECT id, theme_id FROM statements")
    }
    extra = [
        note_meta(dict(n, id=n["id"] + "-b", cycle="gt-3", date="2025-03-01"))
        for n in load_jsonl("mining_notes.jsonl")[:3]
    ]
    for n in extra:
        await acts.ingest_note(n)
    res = await mine_directly(pool, acts, "run-second")
    new = {r["id"] for r in await _rows(pool, "SELECT id FROM themes WHERE retired_at IS NULL")}
    assert len(old & new) >= max(1, len(old) // 2), (old, new)
    kept = sum(
        1
        for r in await _rows(pool, "SELECT id, theme_id FROM statements")
        if r["id"] in old_assign and old_assign[r["id"]] and r["theme_id"] == old_assign[r["id"]]
    )
    assert kept >= 0.7 * sum(1 for v in old_assign.values() if v)
    assert res.changes and {c["kind"] for c in res.changes} <= {
        "new",
        "kept",
        "merged",
        "split",
        "retired",
    }
    events = await _rows(
        pool, "SELECT type, payload FROM events WHERE stream_id = 'mining' ORDER BY version"
    )
    assert events and events[-1]["type"] in {
        "ThemesMined",
        "ThemeCreated",
        "ThemeMerged",
        "ThemeSplit",
        "ThemeRetired",
    }
    assert any(
        e["type"] == "ThemesMined" and e["payload"]["run_id"] == "run-second" for e in events
    )


async def test_mining_schedule_is_created_once(
    temporal_env: WorkflowEnvironment, settings: Settings
) -> None:
    client = temporal_env.client
    sid = f"{SCHEDULE_ID}-{uuid.uuid4().hex[:6]}"
    assert await ensure_mining_schedule(client, settings, schedule_id=sid) is True
    assert await ensure_mining_schedule(client, settings, schedule_id=sid) is False
    desc = await client.get_schedule_handle(sid).describe()
    action = desc.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow) and action.workflow == THEME_MINING
    assert desc.schedule.spec.intervals[0].every.total_seconds() == 24 * 3600
    await client.get_schedule_handle(sid).delete()


async def test_assign_note_themes_reads_the_cycle_read_models(
    acts: MiningActivities, pool: AsyncConnectionPool
) -> None:
    from temporalio.testing import ActivityEnvironment

    from workflows.mining_contract import AssignNoteThemesInput

    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO meetings (cycle_id, id, kind, format, starts_at, ends_at, state,"
            " held_at, updated_at) VALUES ('gt-9', 'v9', 'site_visit', 'on_site',"
            " '2025-02-03T09:00Z', '2025-02-03T11:00Z', 'held', '2025-02-03T11:00Z', now())"
        )
        await conn.execute(
            "INSERT INTO notes (id, cycle_id, programme_id, meeting_id, author_organisation,"
            " language, text, client_key, submitted_at) VALUES ('rm-1', 'gt-9', 'greentech',"
            " 'v9', 'vast-kluster', 'sv', %s, 'k1', now())",
            (
                "- Vi rekommenderar korta digitala träffar varje vecka för att hålla medlemmarna"
                " engagerade under en kris.",
            ),
        )
        await conn.commit()
    out = await ActivityEnvironment().run(
        acts.assign_note_themes, AssignNoteThemesInput("rm-1", "gt-9", "v9")
    )
    assert out.statement_count == 1
    row = (await _rows(pool, "SELECT * FROM statements WHERE note_id = 'rm-1'"))[0]
    assert row["programme_id"] == "greentech" and row["organisation_id"] == "vast-kluster"
    assert str(row["source_date"]) == "2025-02-03" and row["language"] == "sv"
    # joined a theme, or waits unassigned for the next re-mine when none is close enough
    assert (row["theme_id"] in out.theme_ids) if row["theme_id"] else out.unassigned == 1


async def _add_note(pool: AsyncConnectionPool, note_id: str, text: str, age_s: int) -> None:
    """A note as the cycle engine's read model holds it (meeting v9 of gt-9)."""
    async with pool.connection() as conn:
        await conn.execute(
            "INSERT INTO notes (id, cycle_id, programme_id, meeting_id, author_organisation,"
            " language, text, client_key, submitted_at) VALUES (%s, 'gt-9', 'greentech', 'v9',"
            " 'east-agency', 'en', %s, %s, now() - make_interval(secs => %s))",
            (note_id, text, note_id, age_s),
        )
        await conn.commit()


async def test_reconciliation_mines_acknowledged_notes_that_never_got_statements(
    acts: MiningActivities, pool: AsyncConnectionPool
) -> None:
    """Notes whose cycle never mined them (an import, retries still failing) get
    their statements and a ThemesUpdated; a second pass finds nothing; a note
    younger than min_age is left to its cycle."""
    from temporalio.testing import ActivityEnvironment

    from workflows.mining import ReconcileInput

    await _add_note(pool, "rc-1", "- Weekly online meetings kept the members engaged.", 600)
    await _add_note(pool, "rc-2", "- Shared procurement cut the cost of solar panels.", 600)
    await _add_note(pool, "rc-new", "- A very recent note stays with its cycle.", 0)
    env = ActivityEnvironment()
    out = await env.run(acts.mining_reconcile, ReconcileInput("all", min_age_s=60))
    assert (out.notes, out.rejected) == (2, 0) and out.statements == 2
    rows = await _rows(
        pool,
        "SELECT n.id, n.statement_count, count(s.id) AS n FROM notes n"
        " LEFT JOIN statements s ON s.note_id = n.id WHERE n.id LIKE 'rc-%%'"
        " GROUP BY n.id ORDER BY n.id",
    )
    assert [(r["id"], r["statement_count"], r["n"]) for r in rows] == [
        ("rc-1", 1, 1),
        ("rc-2", 1, 1),
        ("rc-new", None, 0),
    ]
    events = await _rows(
        pool,
        "SELECT payload FROM events WHERE stream_id = 'gt-9' AND type = 'ThemesUpdated'",
    )
    assert sorted(e["payload"]["note_id"] for e in events) == ["rc-1", "rc-2"]
    again = await env.run(acts.mining_reconcile, ReconcileInput("all", min_age_s=60))
    assert again.notes == 0


async def test_the_reconciliation_workflow_and_its_schedule(
    worker: Client, pool: AsyncConnectionPool, settings: Settings
) -> None:
    """The scheduled NoteReconciliation workflow mines a forgotten note; the
    worker's ensure call creates its every-minute schedule once."""
    await _add_note(pool, "rc-3", "- Mentoring pairs across clusters built trust quickly.", 600)
    out = await worker.execute_workflow(
        NOTE_RECONCILIATION,
        ReconcileInput("greentech", min_age_s=60),
        id=f"reconcile-{uuid.uuid4().hex[:6]}",
        task_queue=settings.task_queue,
        result_type=ReconcileOutput,
    )
    assert (out.notes, out.statements, out.rejected) == (1, 1, 0)
    sid = f"reconcile-{uuid.uuid4().hex[:6]}"
    assert await ensure_reconcile_schedule(worker, settings, schedule_id=sid) is True
    assert await ensure_reconcile_schedule(worker, settings, schedule_id=sid) is False
    desc = await worker.get_schedule_handle(sid).describe()
    action = desc.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert action.workflow == NOTE_RECONCILIATION
    assert desc.schedule.spec.intervals[0].every.total_seconds() == 60
    await worker.get_schedule_handle(sid).delete()


async def test_a_note_that_cannot_be_mined_is_rejected_for_good_and_recorded(
    acts: MiningActivities, pool: AsyncConnectionPool
) -> None:
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from workflows.mining_contract import AssignNoteThemesInput

    with pytest.raises(ApplicationError) as err:
        await ActivityEnvironment().run(
            acts.assign_note_themes, AssignNoteThemesInput("no-such-note", "gt-9", "v9")
        )
    assert err.value.non_retryable and err.value.type == "NoteRejected"
    events = await _rows(
        pool, "SELECT payload FROM events WHERE stream_id = 'gt-9' AND type = 'NoteRejected'"
    )
    assert [e["payload"]["note_id"] for e in events] == ["no-such-note"]
    assert events[0]["payload"]["stage"] == "mining"


async def test_a_graceful_worker_stop_asks_for_a_prompt_retry(
    acts: MiningActivities, pool: AsyncConnectionPool
) -> None:
    """WorkerShutdown is retryable with a short fixed delay: a stop never ends
    the note's mining and never grows its backoff."""
    import asyncio

    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from workflows.mining_contract import AssignNoteThemesInput

    await _add_note(pool, "sd-1", "- Long note.\n" * 40, 0)
    env = ActivityEnvironment()
    task = asyncio.create_task(
        env.run(acts.assign_note_themes, AssignNoteThemesInput("sd-1", "gt-9", "v9"))
    )
    await asyncio.sleep(0.01)
    env.worker_shutdown()
    env.cancel()
    with pytest.raises(ApplicationError) as err:
        await task
    assert err.value.type == "WorkerShutdown" and not err.value.non_retryable
    assert err.value.next_retry_delay is not None


class _OneTheme:
    """A clusterer stage (``nlp.stages.ClustererStage``) putting every statement
    in one theme."""

    def fit(self, Y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        centre = Y.mean(axis=0)
        centre /= float(np.linalg.norm(centre)) or 1.0
        return np.zeros(len(Y), dtype=np.int64), centre[None, :].astype(np.float32)


_NUMBERS = ("ten", "twelve", "fifteen", "eight", "eleven", "nine")
# The same lesson in both programmes; only programme B's mention the hospital.
_PROCUREMENT_A = [
    f"Joint procurement lowered the price by {n} percent for the cluster members." for n in _NUMBERS
]
_PROCUREMENT_B = [
    f"Joint procurement lowered the price by {n} percent for the hospital." for n in _NUMBERS
]


async def test_labels_a_restricted_key_reads_come_only_from_its_programmes(
    acts: MiningActivities,
    pool: AsyncConnectionPool,
    temporal_env: WorkflowEnvironment,
    model_dir: Path,
    database_url: str,
) -> None:
    """A word only programme B wrote ('hospital') is in programme B's label of a
    theme both programmes share, never in programme A's label or keyphrases,
    nor in anything the API shows a key of programme A."""
    notes = [
        NoteIn(id=f"lab-{p}-{i}", text=t, language="en", programme=f"prog-{p}", cycle=f"c-{p}",
               meeting="m1", organisation=f"org-{p}{i % 3}", date="2025-03-01")
        for p, texts in (("a", _PROCUREMENT_A), ("b", _PROCUREMENT_B))
        for i, t in enumerate(texts)
    ]  # fmt: skip
    await acts.ingest_notes(notes)
    miner = await miners.get_miner_async(acts.settings)
    clusterer = miner.clusterer
    miner.clusterer = _OneTheme()  # A and B in one theme, whatever the embeddings say
    try:
        await mine_directly(pool, acts, "run-labels")
    finally:
        miner.clusterer = clusterer
    shared = await _rows(
        pool,
        "SELECT theme_id FROM statements WHERE programme_id IN ('prog-a', 'prog-b')"
        " AND theme_id IS NOT NULL GROUP BY theme_id"
        " HAVING count(DISTINCT programme_id) = 2",
    )
    assert shared, "the procurement notes of A and B share a theme"
    leaked = await _rows(
        pool,
        "SELECT t.id, t.label, t.keyphrases::text AS keys,"
        " theme_label_for(t.id, ARRAY['prog-a']) AS a_label,"
        " theme_keyphrases_for(t.id, ARRAY['prog-a'])::text AS a_keys,"
        " theme_label_for(t.id, ARRAY['prog-b']) AS b_label,"
        " theme_keyphrases_for(t.id, ARRAY['prog-b'])::text AS b_keys,"
        " theme_label_for(t.id, NULL) AS any_label"
        " FROM themes t WHERE t.id = ANY(%s)",
        [r["theme_id"] for r in shared],
    )
    for r in leaked:
        assert r["a_label"] and "hospital" not in r["a_label"] + r["a_keys"], r
        assert r["any_label"] == r["label"]
    assert any("hospital" in r["b_label"] + r["b_keys"] for r in leaked), leaked
    # a key of neither programme reads no label at all (the API shows the id)
    none = await _rows(
        pool, "SELECT theme_label_for(%s, ARRAY['prog-z']) AS x", shared[0]["theme_id"]
    )
    assert none == [{"x": None}]
    # and through the API: an analyst of programme A never reads 'hospital'
    from auth_helpers import api_client, key_headers

    from api.main import create_app

    target = temporal_env.client.service_client.config.target_host
    app = create_app(mining_settings(model_dir, database_url, TEMPORAL_ADDRESS=target))
    analyst_a = key_headers(database_url, "analyst", programmes=["prog-a"])
    async with api_client(app, analyst_a) as c:
        themes = await c.get("/v1/themes")
        assert themes.status_code == 200, themes.text
        assert themes.json()["items"]
        assert "hospital" not in themes.text
        for t in themes.json()["items"]:
            detail = await c.get(f"/v1/themes/{t['id']}")
            assert detail.status_code == 200 and "hospital" not in detail.text
        hits = await c.get("/v1/search", params={"q": "joint procurement price"})
        assert hits.status_code == 200 and hits.json()["items"]
        assert "hospital" not in hits.text
        practices = await c.get("/v1/practices")
        assert practices.status_code == 200 and "hospital" not in practices.text
