"""Feedback to the host (issue 13): what the peers said about its site visit.

When a site visit's note window closes (``notes_due_after`` days after the
visit: the cycle's own clock), the projector adds a ``feedback`` outbox row.
Its first delivery compiles the peers' mined statements on that visit, in
whatever language they wrote them, into strengths, challenges, lessons and
recommendations, and stores the result (``feedback_summaries``): every
re-send and every later read shows the same summary, even after re-mining.
The host acknowledges it through the API (``FeedbackAcknowledged``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

# Feedback section -> the statement kinds (nlp.types.KINDS) it gathers.
GROUPS: dict[str, tuple[str, ...]] = {
    "strengths": ("success", "best_practice"),
    "challenges": ("challenge",),
    "lessons": ("lesson",),
    "recommendations": ("recommendation",),
}
_GROUP_OF = {k: g for g, kinds in GROUPS.items() for k in kinds}


async def compile_items(
    conn: AsyncConnection[Any], cycle_id: str, meeting_id: str, host: str
) -> list[dict[str, Any]]:
    """The peers' statements on the visit (not the host's own), grouped, in note order."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id AS statement_id, kind, organisation_id AS organisation, language, text"
            " FROM statements WHERE cycle_id = %s AND meeting_id = %s"
            " AND organisation_id IS DISTINCT FROM %s AND kind = ANY(%s)"
            " ORDER BY note_id, position",
            (cycle_id, meeting_id, host, list(_GROUP_OF)),
        )
        rows = await cur.fetchall()
    return [{**r, "group": _GROUP_OF[r["kind"]]} for r in rows]


async def ensure_summary(
    conn: AsyncConnection[Any], cycle_id: str, meeting_id: str, host: str, outbox_id: str
) -> None:
    """Compile and store the summary unless it already is (first delivery wins)."""
    items = await compile_items(conn, cycle_id, meeting_id, host)
    await conn.execute(
        "INSERT INTO feedback_summaries (cycle_id, meeting_id, host, outbox_id, items)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (cycle_id, meeting_id) DO NOTHING",
        (cycle_id, meeting_id, host, outbox_id, Jsonb(items)),
    )


async def summaries(
    conn: AsyncConnection[Any], cycle_id: str, meeting_id: str | None = None
) -> list[dict[str, Any]]:
    """Stored summaries of a cycle (or one meeting) with their acknowledgement."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT f.cycle_id, f.meeting_id, f.host, f.items, f.compiled_at,"
            " a.acknowledged_by, a.acknowledged_at, a.note AS acknowledgement_note"
            " FROM feedback_summaries f LEFT JOIN feedback_acknowledgements a"
            " ON a.cycle_id = f.cycle_id AND a.meeting_id = f.meeting_id"
            " WHERE f.cycle_id = %s AND (%s::text IS NULL OR f.meeting_id = %s)"
            " ORDER BY f.meeting_id",
            (cycle_id, meeting_id, meeting_id),
        )
        return list(await cur.fetchall())


def grouped(items: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    for i in items:
        out[i["group"]].append(dict(i))
    return out


def group_text(
    items: Sequence[Mapping[str, Any]], group: str, partner_names: Mapping[str, str]
) -> str:
    """One section as e-mail lines: the statement as written, who said it, its language."""
    lines = []
    for i in items:
        if i["group"] == group:
            who = partner_names.get(i["organisation"], i["organisation"])
            lines.append(f"- {i['text']} ({who}, {i['language']})")
    return "\n".join(lines) or "-"
