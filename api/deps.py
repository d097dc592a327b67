"""Annotated dependencies shared by every router (FastAPI full-stack style).

They are ``async`` on purpose: FastAPI runs sync dependencies in its thread
pool, a hop that cost measurable latency on the hot analyst endpoints.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client

from api.problems import Problem
from peerlearn.settings import Settings


async def _pool(request: Request) -> AsyncConnectionPool:
    return request.app.state.pool


async def _optional_temporal(request: Request) -> Client | None:
    """The app's Temporal client, or None when the API started without one
    (Temporal down, or an app built for tests): reads that fall back to the
    read model take this, so they keep answering instead of failing 503."""
    return getattr(request.app.state, "temporal", None)


async def _temporal(request: Request) -> Client:
    client = await _optional_temporal(request)
    if client is None:
        raise Problem(503, "Temporal is not reachable; the cycle engine is unavailable")
    return client


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


Pool = Annotated[AsyncConnectionPool, Depends(_pool)]
TemporalClient = Annotated[Client, Depends(_temporal)]
OptionalTemporal = Annotated[Client | None, Depends(_optional_temporal)]
SettingsDep = Annotated[Settings, Depends(_settings)]
