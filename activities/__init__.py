"""Activities: every piece of I/O the workflows need (PostgreSQL, webhooks, the miner).

``all_activities`` builds the callables a worker registers; each activity class
takes its dependencies in ``__init__`` so tests can build it on a real pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg_pool import AsyncConnectionPool

from peerlearn.settings import Settings


def all_activities(pool: AsyncConnectionPool, settings: Settings) -> list[Callable[..., Any]]:
    acts: list[Callable[..., Any]] = []
    return acts
