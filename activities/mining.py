"""Mining activities: thin Temporal wrappers over the mining store and the miner.

- ``assign_note_themes`` (called by the cycle workflow when a note arrives):
  segment the note, embed through the pgvector cache, assign its statements to
  the stored ThemeModel's themes (or leave them unassigned before the first
  re-mine), write them, refresh the touched themes' practices.
- ``mining_prepare`` / ``mining_encode_batch`` / ``mining_cluster`` /
  ``mining_fail``: the stages of the ThemeMining workflow.

SQL lives in :mod:`peerlearn.mining.store`, the model in
:mod:`peerlearn.mining.miner`; CPU-bound steps run in a thread so the worker's
event loop keeps serving workflows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
import psycopg
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from nlp.debias import map_coordinates
from nlp.types import MiningResult, NoteIn, Statement, ThemeChange, ThemeModel
from peerlearn.events import EventType
from peerlearn.mining import curation, store
from peerlearn.mining import miner as miners
from peerlearn.settings import Settings
from workflows.mining import (
    MINING_CLUSTER,
    MINING_ENCODE_BATCH,
    MINING_FAIL,
    MINING_PREPARE,
    MINING_RECONCILE,
    MiningBatchInput,
    MiningBatchOutput,
    MiningClusterInput,
    MiningClusterOutput,
    MiningFailInput,
    MiningPrepareInput,
    MiningPrepareOutput,
    ReconcileInput,
    ReconcileOutput,
)
from workflows.mining_contract import (
    ASSIGN_NOTE_THEMES,
    AssignNoteThemesInput,
    AssignNoteThemesOutput,
)

if TYPE_CHECKING:  # nlp.pipeline imports torch
    from nlp.pipeline import Miner

#: A theme model to assign against, and the scope its theme ids are keyed by.
ScopedModel = tuple[str, ThemeModel | None]

#: Failures no retry can fix: the note is gone from the read model, or its text
#: cannot be stored (PostgreSQL refuses it) or encoded. Everything else (a
#: database restart, a worker stop, a deadlock) is retried without a cap.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    store.NoteNotFound,
    psycopg.DataError,
    UnicodeError,
)
#: ``ApplicationError.type`` of a note the miner refuses for good.
NOTE_REJECTED_ERROR = "NoteRejected"


class MiningActivities:
    def __init__(self, pool: AsyncConnectionPool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    # -- incremental ------------------------------------------------------------------

    @activity.defn(name=ASSIGN_NOTE_THEMES)
    async def assign_note_themes(self, inp: AssignNoteThemesInput) -> AssignNoteThemesOutput:
        """Mine one acknowledged note. The cycle retries this without a cap, so
        only a permanent failure may end it: that one is recorded as a
        ``NoteRejected`` event and raised as non-retryable."""
        try:
            # Heartbeats let the cycle notice a dead worker within its heartbeat
            # timeout instead of waiting out the whole start-to-close timeout.
            async with _heartbeating(5.0):
                async with self.pool.connection() as conn:
                    note = await store.load_note(conn, inp.note_id)
                return await self.ingest_note(note)
        except asyncio.CancelledError:
            if activity.is_worker_shutdown():
                # A graceful stop is not the note's fault: retry soon, elsewhere,
                # without growing the backoff.
                raise ApplicationError(
                    "worker shutting down; the note is mined on the next attempt",
                    type="WorkerShutdown",
                    next_retry_delay=timedelta(seconds=1),
                ) from None
            raise
        except PERMANENT_ERRORS as exc:
            await self._reject(inp.cycle_id, inp.meeting_id, inp.note_id, exc)
            raise ApplicationError(
                f"note {inp.note_id} cannot be mined: {exc}",
                type=NOTE_REJECTED_ERROR,
                non_retryable=True,
            ) from exc

    async def _reject(self, cycle_id: str, meeting_id: str, note_id: str, exc: Exception) -> None:
        await store.append_cycle_event(
            self.pool,
            cycle_id,
            EventType.NOTE_REJECTED,
            {
                "note_id": note_id,
                "meeting_id": meeting_id,
                "stage": "mining",
                "reason": f"{type(exc).__name__}: {exc}"[:500],
            },
            f"note-rejected:mining:{note_id}",
        )

    @activity.defn(name=MINING_RECONCILE)
    async def mining_reconcile(self, inp: ReconcileInput) -> ReconcileOutput:
        """Mine the notes that were acknowledged but never got statements (and
        record their ThemesUpdated, as the cycle would have), in batches; a
        batch holding a note that cannot be mined is redone note by note so
        only that note is rejected."""
        out = ReconcileOutput()
        async with _heartbeating(10.0):
            async with self.pool.connection() as conn:
                notes = await store.notes_to_reconcile(conn, inp.scope, inp.min_age_s, inp.limit)
                notes += await store.self_assessments_to_reconcile(  # issue 13
                    conn, inp.scope, inp.min_age_s, inp.limit
                )
            for i in range(0, len(notes), 64):
                batch = notes[i : i + 64]
                try:
                    done = list(zip(batch, await self.ingest_notes(batch), strict=True))
                except PERMANENT_ERRORS:
                    done = []
                    for note in batch:
                        try:
                            done.append((note, await self.ingest_note(note)))
                        except PERMANENT_ERRORS as exc:
                            await self._reject(note.cycle or "", note.meeting or "", note.id, exc)
                            out.rejected += 1
                for note, res in done:
                    await store.append_cycle_event(
                        self.pool,
                        note.cycle or "",
                        EventType.THEMES_UPDATED,
                        {
                            "meeting_id": note.meeting,
                            "note_id": note.id,
                            "theme_ids": res.theme_ids,
                            "statement_count": res.statement_count,
                            "unassigned": res.unassigned,
                            "source": "reconciliation",
                        },
                        f"themes-updated:reconcile:{note.id}",
                    )
                    out.notes += 1
                    out.statements += res.statement_count
        return out

    async def ingest_note(self, note: NoteIn) -> AssignNoteThemesOutput:
        """Segment, embed (cache first), assign and store one note; also used by tests,
        the demo loader and benchmarks with notes that are not in the read models."""
        return (await self.ingest_notes([note]))[0]

    async def ingest_notes(self, notes: Sequence[NoteIn]) -> list[AssignNoteThemesOutput]:
        """:meth:`ingest_note` for many notes at once: one segmentation call, one
        cache read, one encoding batch, one write batch, one practices refresh."""
        miner = await miners.get_miner_async(self.settings)
        segmented = await asyncio.to_thread(miner.segment, notes, "note")
        cap = self.settings.max_statements_per_note
        by_note: dict[str, list[Statement]] = {n.id: [] for n in notes}
        for st in segmented:
            if len(by_note[st.source_id]) < cap:
                by_note[st.source_id].append(st)
        flat = [st for n in notes for st in by_note[n.id]]
        emb, _encoded = await miners.embed_statements(self.pool, miner, flat)
        async with self.pool.connection() as conn:
            models: dict[str, ScopedModel] = {}
            for n in notes:
                programme = n.programme or ""
                if programme not in models:
                    models[programme] = await _model_for(conn, programme)
            plan = [(by_note[n.id], models[n.programme or ""]) for n in notes]
            assigned = await asyncio.to_thread(_classify_and_assign, miner, flat, emb, plan)
            await store.write_statements(
                conn,
                [
                    store.NoteStatements(n.id, by_note[n.id], tids)
                    for n, tids in zip(notes, assigned, strict=True)
                ],
            )
            curated = await curation.apply_curation(conn)  # e.g. into a merged theme
            await store.refresh_practices(conn, {t for tids in assigned for t in tids} | curated)
            await self._label_new_programmes(conn, miner, notes, assigned)
            await conn.commit()
        return [
            AssignNoteThemesOutput(
                statement_count=len(tids),
                theme_ids=sorted({t for t in tids if t}),
                unassigned=sum(1 for t in tids if t is None),
            )
            for tids in assigned
        ]

    async def _label_new_programmes(
        self,
        conn: store.Conn,
        miner: Miner,
        notes: Sequence[NoteIn],
        assigned: Sequence[Sequence[str | None]],
    ) -> None:
        """A programme whose statements just entered a theme it had no label for
        gets its labels recomputed from its own statements (keyphrases are
        relative to the programme's other themes, so all of them)."""
        pairs = [
            (t, n.programme)
            for n, tids in zip(notes, assigned, strict=True)
            if n.programme
            for t in tids
            if t
        ]
        for programme in sorted(await store.programmes_missing_labels(conn, pairs)):
            rows = await store.programme_statements(conn, programme)
            labels = await asyncio.to_thread(programme_labels, miner, rows)
            await store.save_programme_labels(conn, programme, labels, {t for _, t in rows})

    # -- ThemeMining stages -------------------------------------------------------------

    @activity.defn(name=MINING_PREPARE)
    async def mining_prepare(self, inp: MiningPrepareInput) -> MiningPrepareOutput:
        async with self.pool.connection() as conn:
            total, cached = await store.scope_counts(conn, inp.scope)
            await store.start_run(conn, inp.run_id, inp.scope, inp.trigger, total)
            await conn.commit()
        size = max(1, inp.batch_size)
        return MiningPrepareOutput(total=total, batches=list(range(0, total, size)), cached=cached)

    @activity.defn(name=MINING_ENCODE_BATCH)
    async def mining_encode_batch(self, inp: MiningBatchInput) -> MiningBatchOutput:
        """Encode the batch's texts missing from the cache; heartbeats every chunk."""
        async with self.pool.connection() as conn:
            count, todo = await store.uncached_texts(conn, inp.scope, inp.offset, inp.limit)
        encoded = 0
        if todo:
            miner = await miners.get_miner_async(self.settings)
            items = list(todo.items())
            chunk = 128  # big enough for the encoder's batching, small enough to heartbeat
            for i in range(0, len(items), chunk):
                part = items[i : i + chunk]
                vecs = await asyncio.to_thread(miners.encode_texts, miner, [t for _, t in part])
                async with self.pool.connection() as conn:
                    await store.store_embeddings(
                        conn, {h: vecs[k] for k, (h, _) in enumerate(part)}
                    )
                    await conn.commit()
                encoded += len(part)
                activity.heartbeat(i + len(part))
        async with self.pool.connection() as conn:
            await store.advance_run(conn, inp.run_id, count)
            await conn.commit()
        return MiningBatchOutput(statements=count, encoded=encoded)

    @activity.defn(name=MINING_CLUSTER)
    async def mining_cluster(self, inp: MiningClusterInput) -> MiningClusterOutput:
        async with _heartbeating(10.0):
            return await self._cluster(inp)

    async def _cluster(self, inp: MiningClusterInput) -> MiningClusterOutput:
        scope, run_id = inp.scope, inp.run_id
        async with self.pool.connection() as conn:
            await store.set_run_stage(conn, run_id, "clustering")
            await conn.commit()
            statements, emb = await store.load_scope(conn, scope)
            hidden = await store.hidden_statement_ids(conn, [s.id for s in statements])
            previous = await store.load_theme_model(conn, scope)
            old_ids = await store.active_theme_ids(conn, scope)
        if not statements:
            async with self.pool.connection() as conn:
                await store.complete_run(conn, run_id, 0, [])
                await conn.commit()
            return MiningClusterOutput()
        miner = await miners.get_miner_async(self.settings)
        # clustering and the 2-D projection are CPU-bound (seconds to tens of
        # seconds at 10k statements): one thread does them
        result, xy = await asyncio.to_thread(_mine_sync, miner, statements, emb, previous, inp.seed)
        activity.heartbeat("mined")
        assignments = [store.theme_key(scope, a) if a else None for a in result.assignments]
        # labels are read by keys that may not read facilitators-only notes
        labels = await asyncio.to_thread(
            programme_labels,
            miner,
            [
                (s, None if s.id in hidden else a)
                for s, a in zip(statements, assignments, strict=True)
            ],
        )
        new_ids = {store.theme_key(scope, t.id) for t in result.themes}
        changes = [
            ThemeChange(
                c.kind,
                store.theme_key(scope, c.theme_id),
                [store.theme_key(scope, f) for f in c.from_ids],
            )
            for c in result.changes
        ]
        reported_retired = {c.theme_id for c in changes if c.kind == "retired"}
        changes += [
            ThemeChange("retired", tid) for tid in sorted(old_ids - new_ids - reported_retired)
        ]
        async with self.pool.connection() as conn:
            await store.set_run_stage(conn, run_id, "saving")
            await store.save_themes(conn, scope, result.themes, old_ids - new_ids, run_id)
            await store.save_assignments(conn, statements, assignments, xy)
            await store.save_theme_model(conn, scope, result.model, run_id)
            await store.save_programme_labels(conn, None, labels, old_ids | new_ids)
            # analysts' corrections win over the fresh clustering (issue 11)
            curated = await curation.apply_curation(conn, remined=sorted(new_ids))
            await store.delete_practices(conn, old_ids | new_ids | curated)
            await store.refresh_practices(conn, new_ids | curated, run_id)
            await store.complete_run(conn, run_id, len(result.themes), changes)
            await conn.commit()
        summary = {
            "run_id": run_id,
            "scope": scope,
            "themes": len(result.themes),
            "statements": len(statements),
            "changes": len(changes),
        }
        await store.append_mining_events(
            self.pool,
            run_id,
            [(EventType.THEMES_MINED, summary)]
            + [
                (
                    store.CHANGE_EVENTS.get(c.kind, EventType.THEME_CHANGED),
                    {"run_id": run_id, **c.to_dict()},
                )
                for c in changes
                if c.kind != "kept"
            ],
        )
        return MiningClusterOutput(
            theme_count=len(result.themes),
            assigned=sum(1 for a in assignments if a),
            unassigned=sum(1 for a in assignments if not a),
            changes=[c.to_dict() for c in changes],
        )

    @activity.defn(name=MINING_FAIL)
    async def mining_fail(self, inp: MiningFailInput) -> None:
        async with self.pool.connection() as conn:
            await store.fail_run(conn, inp.run_id, inp.error)
            await conn.commit()

    def all(self) -> list[Callable[..., object]]:
        return [
            self.assign_note_themes,
            self.mining_prepare,
            self.mining_encode_batch,
            self.mining_cluster,
            self.mining_fail,
            self.mining_reconcile,
        ]


async def _model_for(conn: store.Conn, programme: str) -> ScopedModel:
    """The model a programme's new statements are assigned with: the programme's
    own when it has been mined on its own, else the global one."""
    if programme:
        model = await store.load_theme_model(conn, programme)
        if model is not None:
            return programme, model
    return "all", await store.load_theme_model(conn, "all")


def _classify_and_assign(
    miner: Miner,
    flat: list[Statement],
    emb: np.ndarray,
    plan: list[tuple[list[Statement], ScopedModel]],
) -> list[list[str | None]]:
    """Kinds (they use the embeddings too) and the nearest stored theme per
    statement; ``plan`` is each note's statements (in ``flat`` order) and model."""
    if flat:
        miner.classify(flat, emb)
    out: list[list[str | None]] = []
    pos = 0
    for stmts, (scope, model) in plan:
        vecs = emb[pos : pos + len(stmts)]
        pos += len(stmts)
        if model is None or not stmts:
            out.append([None] * len(stmts))
            continue
        raw = miner.assign(stmts, vecs, model)
        out.append([store.theme_key(scope, t) if t else None for t in raw])
    return out


def programme_labels(
    miner: Miner, pairs: Sequence[tuple[Statement, str | None]]
) -> list[store.ProgrammeLabel]:
    """Each programme's label and keyphrases of each of its themes, computed by
    the miner's labeller from that programme's statements only, so a key of
    programme A never reads a word only programme B wrote."""
    statements = [s for s, _ in pairs]
    by_programme: dict[str, dict[str, list[int]]] = {}
    for i, (s, tid) in enumerate(pairs):
        if tid and s.programme:
            by_programme.setdefault(s.programme, {}).setdefault(tid, []).append(i)
    out: list[store.ProgrammeLabel] = []
    for programme, themes in sorted(by_programme.items()):
        tids = sorted(themes)
        clusters = [themes[t] for t in tids]
        texts = miner.labeller.describe(statements, clusters)
        out += [
            store.ProgrammeLabel(
                t,
                programme,
                tt.label,
                tt.label_language,
                list(tt.keyphrases),
                len(members),
                dict(tt.titles),
            )
            for t, members, tt in zip(tids, clusters, texts, strict=True)
        ]
    return out


def _mine_sync(
    miner: Miner,
    statements: list[Statement],
    emb: np.ndarray,
    previous: ThemeModel | None,
    seed: int,
) -> tuple[MiningResult, np.ndarray]:
    result = miner.mine(statements, embeddings=emb, previous=previous, seed=seed)
    xy, _explained = map_coordinates(emb, [s.language for s in statements])
    return result, xy


@contextlib.asynccontextmanager
async def _heartbeating(seconds: float) -> AsyncIterator[None]:
    """Heartbeat every ``seconds`` while the body runs."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(seconds)
            activity.heartbeat("working")

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
