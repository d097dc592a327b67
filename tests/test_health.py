"""GET /health against a real PostgreSQL, a real Temporal server and the real
model folder: 200 only when every component is ok, 503 naming what fails."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.main import create_app
from peerlearn.settings import Settings


@activity.defn(name="health_test_noop")
async def noop() -> None:
    return None


def make_settings(env: WorkflowEnvironment, database_url: str, model_dir: Path) -> Settings:
    return Settings.model_validate(
        {
            "DATABASE_URL": database_url,
            "TEMPORAL_ADDRESS": env.client.service_client.config.target_host,
            "task_queue": f"health-{uuid.uuid4().hex[:8]}",
            "model_dir": model_dir,
        }
    )


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


async def test_all_ok_with_a_polling_worker(
    temporal_env: WorkflowEnvironment, database_url: str, model_dir: Path
) -> None:
    settings = make_settings(temporal_env, database_url, model_dir)
    async with (
        Worker(temporal_env.client, task_queue=settings.task_queue, activities=[noop]),
        client_for(settings) as http,
    ):
        r = await http.get("/health")
    body = r.json()
    assert r.status_code == 200, body
    assert body["status"] == "ok"
    comps = body["components"]
    assert set(comps) == {"temporal", "postgres", "worker", "embedding_model"}
    assert all(c["status"] == "ok" for c in comps.values()), comps
    assert settings.task_queue in comps["worker"]["detail"]
    assert "migrations applied" in comps["postgres"]["detail"]


async def test_503_names_the_missing_worker(
    temporal_env: WorkflowEnvironment, database_url: str, model_dir: Path
) -> None:
    settings = make_settings(temporal_env, database_url, model_dir)
    async with client_for(settings) as http:
        r = await http.get("/health")
    body = r.json()
    assert r.status_code == 503
    assert body["status"] == "failing"
    worker = body["components"]["worker"]
    assert worker["status"] == "failing"
    assert "peerlearn worker" in worker["detail"]
    assert body["components"]["temporal"]["status"] == "ok"
    assert body["components"]["postgres"]["status"] == "ok"


async def test_503_names_the_missing_model(
    temporal_env: WorkflowEnvironment, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(temporal_env, database_url, tmp_path / "nothing")
    async with (
        Worker(temporal_env.client, task_queue=settings.task_queue, activities=[noop]),
        client_for(settings) as http,
    ):
        r = await http.get("/health")
    body = r.json()
    assert r.status_code == 503
    model = body["components"]["embedding_model"]
    assert model["status"] == "failing"
    assert "peerlearn model prepare" in model["detail"]
    assert body["components"]["worker"]["status"] == "ok"


async def test_503_when_temporal_is_unreachable(database_url: str, model_dir: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    settings = Settings.model_validate(
        {"DATABASE_URL": database_url, "TEMPORAL_ADDRESS": dead, "model_dir": model_dir}
    )
    async with client_for(settings) as http:
        r = await http.get("/health")
    body = r.json()
    assert r.status_code == 503
    assert body["components"]["temporal"]["status"] == "failing"
    assert body["components"]["postgres"]["status"] == "ok"
    assert all(c["latency_ms"] < 5000 for c in body["components"].values())
