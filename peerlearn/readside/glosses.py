"""English glosses beside non-English statements, as the caller may read them.

The mining store keeps, per non-English statement, the English statements of
its theme that say the most similar thing (``statement_glosses``, migration
0014, rule of :mod:`nlp.glosses`), best first. The read side shows the best
one the caller may see: a key restricted to programme A never reads programme
B's English sentence as a gloss. A gloss is labelled as a similar statement,
never as a translation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from nlp.glosses import GLOSS_LABEL
from peerlearn.access import Principal
from peerlearn.readside.filters import visible_clause


async def glosses_for(
    conn: AsyncConnection[Any], principal: Principal, statement_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """``{statement_id: {english_statement_id, english_text, similarity, label}}``
    for those of ``statement_ids`` that have a visible English gloss."""
    ids = sorted(set(statement_ids))
    if not ids:
        return {}
    vis, params = visible_clause(principal, "e")
    params["ids"] = ids
    cur = await conn.cursor(row_factory=dict_row).execute(
        "SELECT DISTINCT ON (g.statement_id) g.statement_id, g.english_statement_id,"
        " e.text AS english_text, g.similarity FROM statement_glosses g"
        " JOIN statements e ON e.id = g.english_statement_id AND e.theme_id = g.theme_id"
        f" WHERE g.statement_id = ANY(%(ids)s) AND {vis}"
        " ORDER BY g.statement_id, g.rank",
        params,
    )
    return {
        r["statement_id"]: {
            "english_statement_id": r["english_statement_id"],
            "english_text": r["english_text"],
            "similarity": round(float(r["similarity"]), 3),
            "label": GLOSS_LABEL,
        }
        for r in await cur.fetchall()
    }


def attach(items: Iterable[dict[str, Any]], glosses: dict[str, dict[str, Any]], key: str) -> None:
    """Add ``gloss`` to each item whose ``key`` (a statement id) has one."""
    for it in items:
        g = glosses.get(it.get(key) or "")
        if g is not None:
            it["gloss"] = g
