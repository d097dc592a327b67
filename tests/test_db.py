"""The migration runner: versioned, idempotent, safe to re-run."""

from __future__ import annotations

import psycopg

from peerlearn import db


def test_migrations_are_recorded_and_idempotent(fresh_database_url: str) -> None:
    # The fixture already migrated once; a second run applies nothing.
    assert db.migrate(fresh_database_url) == []
    with psycopg.connect(fresh_database_url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        ext = conn.execute("SELECT extname FROM pg_extension WHERE extname = 'vector'").fetchone()
    assert versions == [v for v, _ in db.migration_files()]
    assert ext is not None


def test_unreachable_database_gives_a_clear_error() -> None:
    bad = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"
    try:
        db.wait_for_database(bad, timeout=1.0)
    except db.DatabaseUnavailable as exc:
        msg = str(exc)
        assert "DATABASE_URL" in msg and "127.0.0.1" in msg
    else:  # pragma: no cover - would mean something listens on port 1
        raise AssertionError("expected DatabaseUnavailable")
