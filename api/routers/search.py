"""GET /v1/search?q=...: semantic search over statements in every language.

The query is embedded like a statement (cached in an LRU, so a repeated query
costs no encoding), the HNSW index on ``embeddings`` proposes the nearest
texts, and the filters and the caller's grant are applied to their statements.
When the filters are so narrow that the proposals hold too few matches, an
exact scan over the filtered statements answers instead.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query
from psycopg.rows import dict_row

from activities.mining import load_model
from api.analyst import FiltersDep, statement_where
from api.auth import CurrentPrincipal
from api.deps import Pool, SettingsDep
from peerlearn.miner_service import _as_array, query_embedder

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
    vec, qlang = await query_embedder(settings).embed_with_language(q)
    # candidates come back in binary: 400 vectors as text cost ~50 ms of parsing
    # on the event loop, as raw floats ~5 ms
    where, params = statement_where(principal, filters)
    params.update({"q": vec, "k": max(CANDIDATES, limit * 4)})
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL hnsw.ef_search = 200")
        cur = await conn.cursor(row_factory=dict_row, binary=True).execute(
            f"""
            WITH c AS (
                SELECT content_hash, embedding, embedding <=> %(q)s AS distance FROM embeddings
                ORDER BY embedding <=> %(q)s LIMIT %(k)s
            )
            SELECT {_COLUMNS}, c.embedding
            FROM c JOIN statements s USING (content_hash)
            LEFT JOIN themes t ON t.id = s.theme_id
            WHERE {where}
            ORDER BY c.distance, s.id
            """,
            params,
        )
        rows = [dict(r) for r in await cur.fetchall()]
        exact = False
        if len(rows) < limit and where != "TRUE":
            exact = True
            params["limit"] = max(CANDIDATES, limit * 4)
            cur = await conn.cursor(row_factory=dict_row, binary=True).execute(
                f"""
                SELECT {_COLUMNS}, e.embedding
                FROM statements s JOIN embeddings e USING (content_hash)
                LEFT JOIN themes t ON t.id = s.theme_id
                WHERE {where}
                ORDER BY e.embedding <=> %(q)s, s.id LIMIT %(limit)s
                """,
                params,
            )
            rows = [dict(r) for r in await cur.fetchall()]
        model = await load_model(conn, "all")
    rows = rerank(rows, vec, qlang, model, settings)[:limit]
    items = []
    for r in rows:
        tid, label = r.pop("theme_id"), r.pop("theme_label")
        r["theme"] = {"id": tid, "label": label} if tid else None
        items.append(r)
    return {"query": q, "language": qlang, "items": items, "exact": exact}


def rerank(
    rows: list[dict[str, Any]], qvec: np.ndarray, qlang: str, model: Any, settings: Any
) -> list[dict[str, Any]]:
    """Order candidates by similarity after removing each language's mean vector
    (the mined ThemeModel's), so a Polish query is not drawn to Polish statements
    for being Polish; plain cosine when nothing has been mined yet."""
    if not rows:
        return rows
    X = np.stack([_as_array(r.pop("embedding")) for r in rows])
    raw = X @ qvec
    if model is not None and len(model.language_means):
        from peerlearn.miner_service import _miners

        miner = next(iter(_miners.values()), None)
        deb = getattr(miner, "debiaser", None)
        if deb is not None:
            project = bool(model.params.get("project", False))
            Y = deb.transform(X, [r["language"] for r in rows], model.language_means,
                              model.global_mean, project=project)
            qy = deb.transform(qvec[None, :], [qlang], model.language_means, model.global_mean,
                               project=project)[0]
            score = Y @ qy
        else:
            score = raw
    else:
        score = raw
    order = np.argsort(-score, kind="stable")
    out = []
    for i in order:
        r = rows[int(i)]
        r["similarity"] = round(float(raw[i]), 4)
        r["score"] = round(float(score[i]), 4)
        out.append(r)
    return out
