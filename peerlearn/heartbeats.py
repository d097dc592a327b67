"""Worker liveness rows (``worker_heartbeats``), written by each worker and read
by ``GET /health``.

Temporal's poller list remembers a worker for up to ~90 s after its last poll
(a long poll lasts ~70 s), so a worker frozen by SIGSTOP, a wedged event loop
or a stuck host looked healthy for over a minute. Each worker therefore upserts
its own row every :data:`BEAT_EVERY_S` from its event loop (on a connection of
its own, so a busy pool cannot delay it); a row older than :data:`STALE_AFTER_S`
means that worker stopped answering. A worker deletes its row when it stops
gracefully, and a worker starting on a host deletes the rows of that host's
pids that no longer exist, so restarts and scale-down leave nothing stale.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row

BEAT_EVERY_S = 3.0
STALE_AFTER_S = 12.0  # four missed beats: hung (detected within ~15 s)
FORGET_AFTER_S = 120.0  # a row this old no longer fails /health (a host that is gone)


@dataclass(frozen=True)
class Beat:
    identity: str
    host: str
    pid: int
    age_s: float


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


async def beat(conn: psycopg.AsyncConnection[Any], identity: str, task_queue: str) -> None:
    """Record that ``identity`` (this process) is alive now."""
    await conn.execute(
        "INSERT INTO worker_heartbeats (identity, task_queue, host, pid)"
        " VALUES (%s, %s, %s, %s)"
        " ON CONFLICT (identity) DO UPDATE SET beat_at = now(), task_queue = EXCLUDED.task_queue",
        (identity, task_queue, socket.gethostname(), os.getpid()),
    )


async def forget(conn: psycopg.AsyncConnection[Any], identity: str) -> None:
    """A graceful stop: this worker is gone on purpose, not hung."""
    await conn.execute("DELETE FROM worker_heartbeats WHERE identity = %s", (identity,))


async def reap_dead_on_this_host(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    """Delete the rows of this host's workers whose process no longer exists
    (killed with -9 and restarted under a new pid); returns their identities."""
    cur = await conn.execute(
        "SELECT identity, pid FROM worker_heartbeats WHERE host = %s AND pid <> %s",
        (socket.gethostname(), os.getpid()),
    )
    dead = [str(r[0]) for r in await cur.fetchall() if not _pid_alive(int(r[1]))]
    if dead:
        await conn.execute("DELETE FROM worker_heartbeats WHERE identity = ANY(%s)", (dead,))
    return dead


async def beats(conn: psycopg.AsyncConnection[Any], task_queue: str) -> list[Beat]:
    """Every worker row of ``task_queue`` with its age in seconds (database clock)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT identity, host, pid, extract(epoch FROM now() - beat_at)::float8 AS age"
            " FROM worker_heartbeats WHERE task_queue = %s ORDER BY identity",
            (task_queue,),
        )
        rows = await cur.fetchall()
    return [Beat(r["identity"], r["host"], int(r["pid"]), float(r["age"])) for r in rows]
