"""Helpers shared by the mining and analyst tests: the fixture notes, settings
pointing at the test model, and a full mining pass without a worker."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from psycopg_pool import AsyncConnectionPool
from temporalio.testing import ActivityEnvironment

from activities.mining import MiningActivities
from nlp.types import NoteIn
from peerlearn.settings import Settings
from workflows.mining import MiningBatchInput, MiningClusterInput, MiningPrepareInput

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_jsonl(name: str) -> list[dict[str, Any]]:
    with open(FIXTURES / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def mining_settings(model_dir: Path, database_url: str, **kw: Any) -> Settings:
    values: dict[str, Any] = {
        "model_dir": model_dir,
        "DATABASE_URL": database_url,
        "task_queue": f"mining-{uuid.uuid4().hex[:6]}",
        **kw,
    }
    return Settings(**values)


def note_meta(n: dict[str, Any]) -> NoteIn:
    """A fixture line (extra keys ignored) as the miner's note."""
    return NoteIn.from_dict(n)


async def ingest_fixture(acts: MiningActivities, name: str = "mining_notes.jsonl") -> int:
    """All fixture notes in one batch (one encoding call, one write batch)."""
    outs = await acts.ingest_notes([note_meta(n) for n in load_jsonl(name)])
    return sum(o.statement_count for o in outs)


async def mine_directly(
    pool: AsyncConnectionPool, acts: MiningActivities, run_id: str, scope: str = "all"
) -> Any:
    """The ThemeMining stages run in order through ActivityEnvironment (no worker)."""
    env = ActivityEnvironment()
    prep = await env.run(acts.mining_prepare, MiningPrepareInput(run_id, scope, "test", 64))
    for off in prep.batches:
        await env.run(acts.mining_encode_batch, MiningBatchInput(run_id, scope, off, 64))
    return await env.run(acts.mining_cluster, MiningClusterInput(run_id, scope, 0))
