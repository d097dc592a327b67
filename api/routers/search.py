"""GET /v1/search?q=...: semantic search over statements in every language.

The query is embedded like a statement (cached in an LRU, so a repeated query
costs no encoding), the HNSW index on ``embeddings`` proposes the nearest
texts, and the filters and the caller's grant are applied to their statements.
When the filters are so narrow that the proposals hold too few matches, an
exact scan over the filtered statements answers instead.

Per request (the 50 ms p95 budget at 50 req/s on two cores): one query returns
the candidates as a single row — their statements' ids and languages as arrays
and the distinct candidate vectors as one ``vector_send`` blob that numpy reads
without a Python object per number — the re-rank runs in numpy, and only the
``limit`` winners' columns are fetched. The answer is serialised once by
pydantic-core (no ``jsonable_encoder`` walk).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Response
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from activities import mining
from api.analyst import FastPool, FastSettings, FiltersDep, json_response, statement_where
from api.auth import CurrentPrincipal
from peerlearn.miner_service import query_embedder

router = APIRouter(prefix="/v1/search", tags=["analyst"])

CANDIDATES = 200
EF_SEARCH = 200  # HNSW beam: at least CANDIDATES, or the index returns fewer

_COLUMNS = (
    "s.id AS statement_id, s.text, s.language, s.kind, s.note_id, s.meeting_id, s.cycle_id,"
    " s.programme_id, s.organisation_id, s.source_date AS date, s.theme_id,"
    " t.label AS theme_label"
)

# The candidates, their visible statements and the model version in one row.
# ``i`` numbers the distinct candidate vectors (``vecs``, in that order); each
# statement carries its vector's ``i``; statements come ordered by distance, id.
_CANDIDATES_SQL = """
    WITH c AS (  -- no vectors through the top-k sort (1.5 kB each): fetched for the k below
        SELECT content_hash, embedding <=> %(q)s AS distance FROM embeddings
        ORDER BY embedding <=> %(q)s LIMIT %(k)s
    ), ci AS (
        SELECT c.*, (row_number() OVER (ORDER BY distance, content_hash) - 1)::int AS i FROM c
    ), hits AS (
        SELECT s.id, s.language, ci.i, ci.distance
        FROM ci JOIN LATERAL (
            SELECT s.id, s.language FROM statements s
            WHERE s.content_hash = ci.content_hash AND {where}
            OFFSET 0  -- kept a nested loop over statements_hash, not a scan of all
        ) s ON TRUE
    )
    SELECT (SELECT string_agg(vector_send(e.embedding), ''::bytea ORDER BY ci.i)
            FROM ci JOIN embeddings e USING (content_hash)) AS vecs,
           (SELECT array_agg(id ORDER BY distance, id) FROM hits) AS ids,
           (SELECT array_agg(language ORDER BY distance, id) FROM hits) AS languages,
           (SELECT array_agg(i ORDER BY distance, id) FROM hits) AS idx,
           (SELECT updated_at FROM theme_models WHERE scope = 'all') AS model_version
"""

# Exact fallback: the nearest of the filtered statements themselves.
_EXACT_SQL = """
    WITH hits AS (
        SELECT s.id, s.language, e.embedding, e.embedding <=> %(q)s AS distance
        FROM statements s JOIN embeddings e USING (content_hash)
        WHERE {where}
        ORDER BY e.embedding <=> %(q)s, s.id LIMIT %(k)s
    )
    SELECT string_agg(vector_send(embedding), ''::bytea ORDER BY distance, id) AS vecs,
           array_agg(id ORDER BY distance, id) AS ids,
           array_agg(language ORDER BY distance, id) AS languages,
           NULL::int[] AS idx,
           (SELECT updated_at FROM theme_models WHERE scope = 'all') AS model_version
    FROM hits
"""


@router.get(
    "",
    summary="Statements closest in meaning to q, in any language",
    response_model=dict[str, Any],
)
async def search(
    pool: FastPool,
    settings: FastSettings,
    principal: CurrentPrincipal,
    filters: FiltersDep,
    q: Annotated[str, Query(min_length=2, max_length=1000, description="what to look for")],
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Response:
    vec, qlang = await query_embedder(settings).embed_with_language(q)
    where, params = statement_where(principal, filters)
    params.update({"q": vec, "k": max(CANDIDATES, limit * 4)})
    async with pool.connection() as conn:
        # SET LOCAL lasts until the pool commits at the end of this block
        await conn.execute(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, params['k'])}")
        cand = await _fetch(conn, _CANDIDATES_SQL.format(where=where), params)
        exact = False
        if len(cand["ids"] or ()) < limit and where != "TRUE":
            exact = True
            cand = await _fetch(conn, _EXACT_SQL.format(where=where), params)
        model = await _model(conn, cand["model_version"])
        ids: list[str] = list(cand["ids"] or ())
        top: list[tuple[str, float, float]] = []
        if ids:
            X = _vectors(cand["vecs"], int(vec.shape[0]))
            if cand["idx"] is not None:
                X = X[np.asarray(cand["idx"], dtype=np.intp)]
            raw, score = rank(X, list(cand["languages"]), vec, qlang, model)
            order = np.argsort(-score, kind="stable")[:limit]
            top = [(ids[i], float(raw[i]), float(score[i])) for i in order.tolist()]
        rows: dict[str, dict[str, Any]] = {}
        if top:
            cur = await conn.cursor(row_factory=dict_row).execute(
                f"SELECT {_COLUMNS} FROM statements s LEFT JOIN themes t ON t.id = s.theme_id"
                " WHERE s.id = ANY(%s)",
                ([t[0] for t in top],),
            )
            rows = {r["statement_id"]: dict(r) for r in await cur.fetchall()}
    items = []
    for sid, raw_sim, sc in top:
        r = rows.get(sid)
        if r is None:  # deleted between the two queries
            continue
        tid, label = r.pop("theme_id"), r.pop("theme_label")
        r["similarity"] = round(raw_sim, 4)
        r["score"] = round(sc, 4)
        r["theme"] = {"id": tid, "label": label} if tid else None
        items.append(r)
    body = {"query": q, "language": qlang, "items": items, "exact": exact}
    return json_response(body)


async def _fetch(conn: AsyncConnection[Any], sql: str, params: dict[str, Any]) -> dict[str, Any]:
    cur = await conn.cursor(row_factory=dict_row, binary=True).execute(sql, params)
    row = await cur.fetchone()
    assert row is not None  # aggregates always return one row
    return dict(row)


def _vectors(blob: bytes | None, dim: int) -> np.ndarray:
    """Rows of pgvector's binary format (int16 dim, int16 unused, float4 BE values)
    concatenated by ``string_agg``: the 4-byte header is one float-sized column."""
    if not blob:
        return np.zeros((0, dim), np.float32)
    return np.frombuffer(blob, dtype=">f4").reshape(-1, dim + 1)[:, 1:].astype(np.float32)


async def _model(conn: AsyncConnection[Any], version: Any) -> Any | None:
    """The stored ThemeModel: the version came with the candidates, so the cached
    parse is used without another round trip; load_model when it changed."""
    if version is None:
        return None
    model = mining._model_cache.get(("all", version))
    return model if model is not None else await mining.load_model(conn, "all")


def rank(
    X: np.ndarray, languages: list[str], qvec: np.ndarray, qlang: str, model: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Plain cosine, and the score candidates are ordered by: similarity after
    removing each language's mean vector (the mined ThemeModel's), so a Polish
    query is not drawn to Polish statements for being Polish; plain cosine when
    nothing has been mined yet."""
    raw = X @ qvec
    if model is None or not len(model.language_means):
        return raw, raw
    from peerlearn.miner_service import _miners

    miner = next(iter(_miners.values()), None)
    deb = getattr(miner, "debiaser", None)
    if deb is None:
        return raw, raw
    project = bool(model.params.get("project", False))
    Y = deb.transform(X, languages, model.language_means, model.global_mean, project=project)
    qy = deb.transform(
        qvec[None, :], [qlang], model.language_means, model.global_mean, project=project
    )[0]
    return raw, Y @ qy
