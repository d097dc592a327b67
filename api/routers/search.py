"""GET /v1/search?q=...: semantic search over statements in every language.

The query is embedded like a statement (cached in an LRU, so a repeated query
costs no encoding), the HNSW index on ``embeddings`` proposes the nearest
texts, and the filters and the caller's grant are applied to their statements.
When the filters are so narrow that the proposals hold too few matches, an
exact scan over the filtered statements answers instead.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.analyst import FiltersDep, statement_where
from api.auth import CurrentPrincipal
from api.deps import Pool, SettingsDep
from peerlearn.miner_service import query_embedder

router = APIRouter(prefix="/v1/search", tags=["analyst"])

CANDIDATES = 200

_COLUMNS = (
    "s.id AS statement_id, s.text, s.language, s.kind, s.note_id, s.meeting_id, s.cycle_id,"
    " s.programme_id, s.organisation_id, s.source_date AS date, s.theme_id,"
    " t.label AS theme_label"
)


@router.get("", summary="Statements closest in meaning to q, in any language")
async def search(
    pool: Pool,
    settings: SettingsDep,
    principal: CurrentPrincipal,
    filters: FiltersDep,
    q: Annotated[str, Query(min_length=2, max_length=1000, description="what to look for")],
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    vec = await query_embedder(settings).embed(q)
    where, params = statement_where(principal, filters)
    params.update({"q": vec, "k": max(CANDIDATES, limit * 4), "limit": limit})
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL hnsw.ef_search = 200")
        cur = await conn.execute(
            f"""
            WITH c AS (
                SELECT content_hash, embedding <=> %(q)s AS distance FROM embeddings
                ORDER BY embedding <=> %(q)s LIMIT %(k)s
            )
            SELECT {_COLUMNS}, 1 - c.distance AS similarity
            FROM c JOIN statements s USING (content_hash)
            LEFT JOIN themes t ON t.id = s.theme_id
            WHERE {where}
            ORDER BY c.distance, s.id LIMIT %(limit)s
            """,
            params,
        )
        rows = [dict(r) for r in await cur.fetchall()]
        exact = False
        if len(rows) < limit and where != "TRUE":
            exact = True
            cur = await conn.execute(
                f"""
                SELECT {_COLUMNS}, 1 - (e.embedding <=> %(q)s) AS similarity
                FROM statements s JOIN embeddings e USING (content_hash)
                LEFT JOIN themes t ON t.id = s.theme_id
                WHERE {where}
                ORDER BY e.embedding <=> %(q)s, s.id LIMIT %(limit)s
                """,
                params,
            )
            rows = [dict(r) for r in await cur.fetchall()]
    items = []
    for r in rows:
        tid, label = r.pop("theme_id"), r.pop("theme_label")
        r["similarity"] = round(float(r["similarity"]), 4)
        r["theme"] = {"id": tid, "label": label} if tid else None
        items.append(r)
    return {"query": q, "items": items, "exact": exact}
