"""POST /v1/mining-runs (start a re-mine) and GET /v1/mining-runs/{id} (follow it).

Progress comes from the ThemeMining workflow's query while it runs and from
the ``mining_runs`` table otherwise (finished runs, or no worker to answer).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from psycopg.rows import dict_row
from pydantic import BaseModel, Field
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.auth import CurrentPrincipal, Role, require
from api.deps import OptionalTemporal, Pool, SettingsDep, TemporalClient
from api.problems import Problem
from workflows.mining import (
    PROGRESS_QUERY,
    THEME_MINING,
    MiningProgress,
    ThemeMiningInput,
    workflow_id_for_run,
)

router = APIRouter(prefix="/v1/mining-runs", tags=["mining"])


class MiningRunIn(BaseModel):
    scope: str = Field(
        default="all",
        min_length=1,
        max_length=200,
        description="'all' to re-mine every programme, or one programme id",
    )
    batch_size: int = Field(default=256, ge=16, le=4096)


def _row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "scope": r["scope"],
        "trigger": r["trigger"],
        "status": r["status"],
        "stage": r["stage"],
        "done": r["done"],
        "total": r["total"],
        "theme_count": r["theme_count"],
        "changes": r["changes"],
        "error": r["error"],
        "started_at": r["started_at"],
        "finished_at": r["finished_at"],
        "source": "table",
    }


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Start a ThemeMining run (manager role)",
    dependencies=[require(Role.manager)],
)
async def start_run(
    body: MiningRunIn,
    pool: Pool,
    client: TemporalClient,
    settings: SettingsDep,
    principal: CurrentPrincipal,
) -> dict[str, Any]:
    if body.scope == "all":
        if principal.programme_filter() is not None:
            raise Problem(403, "re-mining every programme needs an admin key; pass a programme")
    else:
        principal.check_programme(body.scope)
    run_id = uuid.uuid4().hex[:12]
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT id FROM mining_runs WHERE scope = %s AND status = 'running'"
            " AND started_at > now() - interval '2 hours'",
            (body.scope,),
        )
        running = await cur.fetchone()
        if running:
            raise Problem(
                409, f"a mining run for {body.scope!r} is already running", run_id=running["id"]
            )
        cur = await conn.cursor(row_factory=dict_row).execute(
            "INSERT INTO mining_runs (id, scope, trigger) VALUES (%s, %s, 'api') RETURNING *",
            (run_id, body.scope),
        )
        row = await cur.fetchone()
        await conn.commit()
    try:
        await client.start_workflow(
            THEME_MINING,
            ThemeMiningInput(
                run_id=run_id, scope=body.scope, trigger="api", batch_size=body.batch_size
            ),
            id=workflow_id_for_run(run_id),
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError as exc:
        raise Problem(409, "this mining run was already started") from exc
    except Exception:
        async with pool.connection() as conn:
            await conn.execute(
                "UPDATE mining_runs SET status = 'failed', error = 'could not start workflow',"
                " finished_at = now() WHERE id = %s",
                (run_id,),
            )
            await conn.commit()
        raise
    assert row is not None
    return _row(row)


@router.get("", summary="Recent mining runs")
async def list_runs(
    pool: Pool,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
) -> dict[str, Any]:
    visible = principal.programme_filter()
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT * FROM mining_runs WHERE (%(v)s::text[] IS NULL OR scope = ANY(%(v)s))"
            " ORDER BY started_at DESC LIMIT %(limit)s",
            {"v": visible, "limit": limit},
        )
        rows = await cur.fetchall()
    return {"items": [_row(r) for r in rows]}


@router.get("/{run_id}", summary="Progress of a mining run (statements done / total, stage)")
async def get_run(
    run_id: str, pool: Pool, principal: CurrentPrincipal, client: OptionalTemporal
) -> dict[str, Any]:
    async with pool.connection() as conn:
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT * FROM mining_runs WHERE id = %s", (run_id,)
        )
        row = await cur.fetchone()
    if row is None:
        raise Problem(404, f"no mining run {run_id!r}")
    scope = row["scope"]
    if not (principal.all_programmes if scope == "all" else principal.can_see(scope)):
        raise Problem(404, f"no mining run {run_id!r}")  # as unknown: no programme named
    out = _row(row)
    if row["status"] == "running" and client is not None:
        wf_id = run_id if row["trigger"] == "schedule" else workflow_id_for_run(run_id)
        try:
            handle = client.get_workflow_handle(wf_id)
            p: MiningProgress = await handle.query(
                PROGRESS_QUERY, result_type=MiningProgress, rpc_timeout=_timeout()
            )
            out.update(
                status=p.status,
                stage=p.stage,
                done=p.done,
                total=p.total,
                theme_count=p.theme_count,
                source="workflow",
            )
            if p.changes:
                out["changes"] = p.changes
        except Exception:  # no worker or no workflow yet: the table answers
            pass
    return out


def _timeout() -> Any:
    from datetime import timedelta

    return timedelta(seconds=2)
