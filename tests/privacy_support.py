"""Shared checks of the privacy tests: where a marker word still lies (every
text, JSON, array and byte column of the schema; a workflow's Temporal
history) and whether every event stream is still gap-free."""

from __future__ import annotations

from typing import Any

from psycopg import sql
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool
from temporalio.client import Client


async def tables_holding(pool: AsyncConnectionPool, marker: str) -> list[str]:
    """Every ``table.column`` (text, jsonb, json, bytea, arrays) holding ``marker``."""
    async with pool.connection() as conn:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT table_name, column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND data_type IN"
                " ('text', 'jsonb', 'json', 'bytea', 'ARRAY', 'character varying')"
            )
            cols = await cur.fetchall()
        found = []
        for col in cols:
            t, name = sql.Identifier(col["table_name"]), sql.Identifier(col["column_name"])
            if col["data_type"] == "bytea":
                cond = sql.SQL("position(convert_to(%s, 'UTF8') in {}) > 0").format(name)
            else:
                cond = sql.SQL("{}::text ILIKE '%%' || %s || '%%'").format(name)
            async with conn.cursor(row_factory=tuple_row) as cur:
                await cur.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE {}").format(t, cond), (marker,)
                )
                row = await cur.fetchone()
            if row and row[0]:
                found.append(f"{col['table_name']}.{col['column_name']}")
    return found


async def assert_gap_free(pool: AsyncConnectionPool) -> None:
    """Every stream's versions are exactly 1..n and its head says n."""
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT stream_id, count(*) AS n, max(version) AS top, min(version) AS low"
            " FROM events GROUP BY stream_id HAVING count(*) <> max(version) OR min(version) <> 1"
        )
        bad: list[Any] = await cur.fetchall()
        await cur.execute(
            "SELECT s.stream_id FROM event_streams s LEFT JOIN (SELECT stream_id,"
            " max(version) AS v FROM events GROUP BY stream_id) e USING (stream_id)"
            " WHERE s.version <> coalesce(e.v, 0)"
        )
        bad += await cur.fetchall()
    assert not bad, bad


async def history_bytes(client: Client, workflow_id: str) -> bytes:
    """The workflow's whole Temporal history as raw protobuf bytes: payloads
    (update arguments, activity inputs and results) appear in them verbatim,
    so a clear-text word would be found by a plain ``in``."""
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return b"".join(e.SerializeToString() for e in history.events)
