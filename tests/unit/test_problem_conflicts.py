"""A transaction PostgreSQL aborted for a concurrent writer (deadlock,
serialization failure, lock timeout) is a 503 problem+json with Retry-After,
not a 500: nothing was written and the same request again succeeds."""

from __future__ import annotations

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api import problems


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.DeadlockDetected,
        psycopg.errors.SerializationFailure,
        psycopg.errors.LockNotAvailable,
    ],
)
def test_concurrent_writer_is_503_with_retry_after(error: type[psycopg.Error]) -> None:
    app = FastAPI()
    problems.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise error("deadlock detected")

    @app.get("/crash")
    async def crash() -> None:
        raise psycopg.errors.UndefinedTable("no such table")

    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/boom")
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.headers["retry-after"] == "1"
        assert "send the request again" in r.json()["detail"]
        assert client.get("/crash").status_code == 500  # other database errors stay 500
