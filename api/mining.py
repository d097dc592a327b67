"""Starting a re-mine from a route that changed what is mined (an import
brings notes in, an erasure takes them out): one ThemeMining run per scope,
the same as ``POST /v1/mining-runs``."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError

from peerlearn.mining import store
from peerlearn.settings import Settings
from workflows.mining import THEME_MINING, ThemeMiningInput, workflow_id_for_run


async def start_mining(
    pool: AsyncConnectionPool,
    client: Client | None,
    settings: Settings,
    scope: str,
    *,
    trigger: str,
) -> str | None:
    """Start a ThemeMining run over ``scope`` as ``POST /v1/mining-runs`` does
    (one running run per scope: an active one is reused); None without Temporal."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id FROM mining_runs WHERE scope = %s AND status = 'running'"
            " AND started_at > now() - interval '2 hours'",
            (scope,),
        )
        running = await cur.fetchone()
        if running is not None:
            return str(running["id"])
        if client is None:
            return None
        run_id = uuid.uuid4().hex[:12]
        await cur.execute(
            "INSERT INTO mining_runs (id, scope, trigger) VALUES (%s, %s, %s)",
            (run_id, scope, trigger),
        )
        await conn.commit()
    try:
        await client.start_workflow(
            THEME_MINING,
            ThemeMiningInput(run_id=run_id, scope=scope, trigger=trigger),
            id=workflow_id_for_run(run_id),
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except RPCError as exc:
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE mining_runs SET status = 'failed', error = %s, finished_at = now()"
                " WHERE id = %s",
                (f"could not start workflow: {exc.message}", run_id),
            )
            await conn.commit()
        return None
    return run_id


async def remine_themes(
    pool: AsyncConnectionPool,
    client: Client | None,
    settings: Settings,
    theme_ids: Iterable[str],
    *,
    trigger: str,
) -> list[str]:
    """Start a re-mine of every scope the themes were mined in (an erasure
    took statements out of them); the run ids started or reused."""
    runs = []
    for scope in sorted({store.theme_scope(t) for t in theme_ids}):
        run = await start_mining(pool, client, settings, scope, trigger=trigger)
        if run is not None:
            runs.append(run)
    return runs
