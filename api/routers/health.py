"""GET /health: is every component this API depends on working, and if not, why.

Each check has its own short timeout and they run concurrently, so a dead
Temporal server costs one timeout, not a hung probe. The worker check asks
Temporal which pollers it has seen on the task queue (DescribeTaskQueue), so
it works with any number of workers on any machines. That list keeps a frozen
worker for up to ~90 s, so the check also reads the liveness rows the
``peerlearn worker`` processes write every few seconds
(:mod:`peerlearn.heartbeats`): a worker whose row went stale is named as hung.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeTaskQueueRequest
from temporalio.client import Client

from peerlearn import db, heartbeats
from peerlearn.settings import Settings

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 2.0
# A worker long-polls for up to ~70 s; Temporal stamps a poller when its poll
# arrives, so an idle but healthy worker can look up to ~70 s old.
WORKER_SEEN_WITHIN_S = 90.0


class Component(BaseModel):
    status: Literal["ok", "failing"]
    detail: str = Field(description="What was checked, or why it failed and how to fix it.")
    latency_ms: float


class Health(BaseModel):
    status: Literal["ok", "failing"]
    components: dict[str, Component]


async def _temporal_client(request: Request, settings: Settings) -> Client:
    """The app's client; if Temporal was down when the API started, connect now."""
    client: Client | None = getattr(request.app.state, "temporal", None)
    if client is None:
        from peerlearn.temporal import connect

        client = await connect(settings)
        request.app.state.temporal = client
    return client


async def check_temporal(request: Request, settings: Settings) -> str:
    client = await _temporal_client(request, settings)
    resp = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=settings.temporal_namespace),
        timeout=timedelta(seconds=CHECK_TIMEOUT_S),
    )
    return f"namespace {resp.namespace_info.name!r} at {settings.temporal_target}"


async def _hung_workers(request: Request, settings: Settings) -> tuple[list[str], set[str]]:
    """(why each recently seen worker is hung, every identity known to be silent).

    A row stale for longer than FORGET_AFTER_S no longer fails the check (that
    host is gone), but its identity still never counts as a live poller.
    """
    pool = request.app.state.pool
    async with pool.connection(timeout=CHECK_TIMEOUT_S) as conn:
        rows = await heartbeats.beats(conn, settings.task_queue)
    silent = [b for b in rows if b.age_s > heartbeats.STALE_AFTER_S]
    hung = [
        f"worker {b.identity} has not reported for {b.age_s:.0f}s (frozen, stopped or killed; "
        f"pid {b.pid} on {b.host})"
        for b in silent
        if b.age_s <= heartbeats.FORGET_AFTER_S
    ]
    return hung, {b.identity for b in silent}


async def check_worker(request: Request, settings: Settings) -> str:
    hung, silent = await _hung_workers(request, settings)
    if hung:
        raise RuntimeError("; ".join(hung))
    client = await _temporal_client(request, settings)
    now = datetime.now(UTC)
    seen: dict[str, float] = {}
    for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=settings.temporal_namespace,
                task_queue=TaskQueue(name=settings.task_queue),
                task_queue_type=kind,
            ),
            timeout=timedelta(seconds=CHECK_TIMEOUT_S),
        )
        for p in resp.pollers:
            age = (now - p.last_access_time.ToDatetime(tzinfo=UTC)).total_seconds()
            seen[p.identity] = min(age, seen.get(p.identity, age))
    live = sorted(i for i, age in seen.items() if age <= WORKER_SEEN_WITHIN_S and i not in silent)
    if not live:
        raise RuntimeError(
            f"no worker has polled task queue {settings.task_queue!r} in the last "
            f"{WORKER_SEEN_WITHIN_S:.0f}s; start one with `peerlearn worker`"
        )
    return f"{len(live)} worker(s) polling {settings.task_queue!r}: {', '.join(live)}"


async def check_postgres(request: Request, settings: Settings) -> str:
    pool = request.app.state.pool
    async with pool.connection(timeout=CHECK_TIMEOUT_S) as conn:
        await conn.execute(f"SET LOCAL statement_timeout = {int(CHECK_TIMEOUT_S * 1000)}")
        rows = await (await conn.execute("SELECT version FROM schema_migrations")).fetchall()
        server = (await (await conn.execute("SHOW server_version")).fetchone())["server_version"]
    applied = {r["version"] for r in rows}
    pending = [v for v, _ in db.migration_files() if v not in applied]
    if pending:
        raise RuntimeError(
            f"migrations pending: {', '.join(pending)}; restart the API or run `peerlearn run`"
        )
    return f"PostgreSQL {server}, {len(applied)} migrations applied"


async def check_model(request: Request, settings: Settings) -> str:
    from nlp.model import is_ready

    path = settings.resolved_model_dir
    if not is_ready(path):
        raise RuntimeError(
            f"no converted model at {path}; run `peerlearn model prepare` "
            "or point PEERLEARN_MODEL_DIR at a prepared folder"
        )
    return f"multilingual-e5-small at {path}"


CHECKS = {
    "temporal": check_temporal,
    "postgres": check_postgres,
    "worker": check_worker,
    "embedding_model": check_model,
}


async def _run(name: str, request: Request, settings: Settings) -> Component:
    t0 = time.perf_counter()
    try:
        detail = await asyncio.wait_for(CHECKS[name](request, settings), CHECK_TIMEOUT_S + 0.5)
        status: Literal["ok", "failing"] = "ok"
    except TimeoutError:
        status, detail = "failing", f"no answer within {CHECK_TIMEOUT_S + 0.5:.1f}s"
    except Exception as exc:
        status, detail = "failing", f"{type(exc).__name__}: {exc}".strip()
    return Component(
        status=status, detail=detail, latency_ms=round((time.perf_counter() - t0) * 1000, 1)
    )


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "At least one component is failing."}},
    summary="Health of every component (Temporal, PostgreSQL, worker, embedding model)",
)
async def health(request: Request) -> Any:
    settings: Settings = request.app.state.settings
    names = list(CHECKS)
    results = await asyncio.gather(*(_run(n, request, settings) for n in names))
    components = dict(zip(names, results, strict=True))
    ok = all(c.status == "ok" for c in components.values())
    body = Health(status="ok" if ok else "failing", components=components)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)
