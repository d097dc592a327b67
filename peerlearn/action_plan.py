"""Action plans (issue 13): the host turns the peers' recommendations into action
items, each with an owner, a due date, a status and progress notes.

Suggestions are the statements the miner classified as ``recommendation`` on
the host's visit, in whatever language the peers wrote them (never English cue
lines). An item keeps a snapshot of the recommendation it answers, so the path
recommendation -> action -> done reads the same after re-mining. Items change
only through ``ActionItemAdded`` / ``ActionItemUpdated`` on the cycle's stream
(projected into ``action_items``); this module holds the rules and the reads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from peerlearn.access import Invalid, NotFound

STATUSES = ("open", "in_progress", "done", "dropped")
CLOSED = ("done", "dropped")


async def suggestions(
    conn: AsyncConnection[Any], cycle_id: str, meeting_id: str | None = None
) -> list[dict[str, Any]]:
    """The peers' recommendations on a cycle's meetings (not the host's own
    statements), marking those an item already answers."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT s.id AS statement_id, s.meeting_id, s.organisation_id AS organisation,"
            " s.language, s.text, m.host,"
            " (SELECT array_agg(a.id ORDER BY a.id) FROM action_items a"
            "   WHERE a.cycle_id = s.cycle_id AND a.recommendation->>'statement_id' = s.id)"
            "   AS action_item_ids"
            " FROM statements s JOIN meetings m ON m.cycle_id = s.cycle_id AND m.id = s.meeting_id"
            " WHERE s.cycle_id = %s AND s.kind = 'recommendation'"
            " AND (%s::text IS NULL OR s.meeting_id = %s)"
            " AND s.organisation_id IS DISTINCT FROM m.host"
            " ORDER BY m.starts_at, s.meeting_id, s.note_id, s.position",
            (cycle_id, meeting_id, meeting_id),
        )
        rows = await cur.fetchall()
    for r in rows:
        r["action_item_ids"] = r["action_item_ids"] or []
    return rows


async def recommendation(
    conn: AsyncConnection[Any], cycle_id: str, statement_id: str
) -> dict[str, Any]:
    """The snapshot an item keeps of the recommendation it answers (with the
    quoted note, whose key its words are sealed under: peerlearn.writings);
    :class:`Invalid` when the statement is not a recommendation of this cycle."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id AS statement_id, meeting_id, organisation_id AS organisation, language,"
            " text, note_id FROM statements"
            " WHERE id = %s AND cycle_id = %s AND kind = 'recommendation'",
            (statement_id, cycle_id),
        )
        row = await cur.fetchone()
    if row is None:
        raise Invalid(f"statement {statement_id!r} is not a recommendation made in this cycle")
    return row


async def items(
    conn: AsyncConnection[Any], cycle_id: str, item_id: str | None = None
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, cycle_id, owner, what, due_at, status, meeting_id, recommendation,"
            " progress, created_by, created_at, coalesce(updated_at, created_at) AS updated_at"
            " FROM action_items WHERE cycle_id = %s AND (%s::text IS NULL OR id = %s)"
            " ORDER BY created_at, id",
            (cycle_id, item_id, item_id),
        )
        return list(await cur.fetchall())


async def item(conn: AsyncConnection[Any], cycle_id: str, item_id: str) -> dict[str, Any]:
    rows = await items(conn, cycle_id, item_id)
    if not rows:
        raise NotFound(f"action item {item_id!r} not found in cycle {cycle_id!r}")
    return rows[0]


def overdue(row: dict[str, Any], now: datetime) -> bool:
    return row["status"] not in CLOSED and row["due_at"] is not None and row["due_at"] < now


def check_transition(current: str, new: str) -> None:
    """Closed items stay closed unless reopened on purpose (done/dropped -> open)."""
    if new not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}")
    if current in CLOSED and new not in ("open", current):
        raise Invalid(f"a {current} item can only be reopened (status 'open')")


async def programme_path(
    conn: AsyncConnection[Any], programme_id: str, cycle_id: str | None = None
) -> list[dict[str, Any]]:
    """Per host of the programme's site visits: recommendation -> action -> done.

    ``recommendations``: the peers' recommendations on visits it hosted;
    ``answered``: those an action item answers; ``items`` by status; ``done``.
    ``cycle_id`` narrows both to one cycle (the cycle's wrap-up report).
    """
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "WITH recs AS ("
            "  SELECT m.host, s.id, s.cycle_id FROM statements s"
            "  JOIN meetings m ON m.cycle_id = s.cycle_id AND m.id = s.meeting_id"
            "  JOIN cycles c ON c.id = s.cycle_id"
            "  WHERE c.programme_id = %(p)s AND s.kind = 'recommendation' AND m.host IS NOT NULL"
            "  AND (%(c)s::text IS NULL OR s.cycle_id = %(c)s)"
            "  AND s.organisation_id IS DISTINCT FROM m.host),"
            " items AS ("
            "  SELECT a.* FROM action_items a JOIN cycles c ON c.id = a.cycle_id"
            "  WHERE c.programme_id = %(p)s AND (%(c)s::text IS NULL OR a.cycle_id = %(c)s)),"
            " hosts AS (SELECT host FROM recs UNION SELECT owner FROM items)"
            " SELECT h.host,"
            "  (SELECT count(*) FROM recs r WHERE r.host = h.host) AS recommendations,"
            "  (SELECT count(*) FROM recs r WHERE r.host = h.host AND EXISTS (SELECT 1 FROM items i"
            "    WHERE i.cycle_id = r.cycle_id AND i.recommendation->>'statement_id' = r.id))"
            "    AS answered,"
            "  (SELECT coalesce(jsonb_object_agg(status, n), '{}'::jsonb) FROM (SELECT status,"
            "    count(*) AS n FROM items i WHERE i.owner = h.host GROUP BY status) x) AS items,"
            "  (SELECT count(*) FROM items i WHERE i.owner = h.host AND i.status = 'done') AS done"
            " FROM hosts h ORDER BY h.host",
            {"p": programme_id, "c": cycle_id},
        )
        return list(await cur.fetchall())
