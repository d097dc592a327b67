"""GET /v1/search?q=...: semantic search over statements in every language.

The query is embedded like a statement (cached in an LRU, so a repeated query
costs no encoding), the HNSW index on ``embeddings`` proposes the nearest
texts, and the filters and the caller's grant are applied to their statements.
When the filters are so narrow that the proposals hold too few matches, an
exact scan over the filtered statements answers instead.

Per request (the 50 ms p95 budget at 50 req/s on two cores): one query returns
the candidates as a single row (:mod:`peerlearn.readside.search` holds the SQL),
the re-rank runs in numpy, and only the ``limit`` winners' columns are fetched.
The answer is serialised once by pydantic-core (no ``jsonable_encoder`` walk).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Response
from psycopg import AsyncConnection

from api.analyst import FastPool, FastSettings, FiltersDep, json_response
from api.auth import CurrentPrincipal
from nlp.debias import LanguageDebiaser
from nlp.types import ThemeModel
from peerlearn.mining import store
from peerlearn.mining.miner import query_embedder
from peerlearn.readside.filters import label_scope, statement_where
from peerlearn.readside.glosses import glosses_for
from peerlearn.readside.search import candidates, statement_rows

router = APIRouter(prefix="/v1/search", tags=["analyst"])


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
    async with pool.connection() as conn:
        cand = await candidates(conn, vec, where, params, limit)
        model = await _model(conn, cand.model_version)
        top: list[tuple[str, float, float]] = []
        if cand.ids:
            raw, score = rank(cand.vectors, cand.languages, vec, qlang, model)
            order = np.argsort(-score, kind="stable")[:limit]
            top = [(cand.ids[i], float(raw[i]), float(score[i])) for i in order.tolist()]
        rows = await statement_rows(conn, [t[0] for t in top], label_scope(principal, filters))
        glosses = await glosses_for(
            conn, principal, (sid for sid, r in rows.items() if r["language"] != "en")
        )
    items = []
    for sid, raw_sim, sc in top:
        r = rows.get(sid)
        if r is None:  # deleted between the two queries
            continue
        tid, label = r.pop("theme_id"), r.pop("theme_label")
        r["similarity"] = round(raw_sim, 4)
        r["score"] = round(sc, 4)
        r["theme"] = {"id": tid, "label": label} if tid else None
        if sid in glosses:
            r["gloss"] = glosses[sid]
        items.append(r)
    body = {"query": q, "language": qlang, "items": items, "exact": cand.exact}
    return json_response(body)


async def _model(conn: AsyncConnection[Any], version: datetime | None) -> ThemeModel | None:
    """The stored ThemeModel: the version came with the candidates, so the cached
    parse is used without another round trip; load_model when it changed."""
    if version is None:
        return None
    model = store.cached_theme_model("all", version)
    return model if model is not None else await store.load_theme_model(conn, "all")


def rank(
    X: np.ndarray, languages: list[str], qvec: np.ndarray, qlang: str, model: ThemeModel | None
) -> tuple[np.ndarray, np.ndarray]:
    """Plain cosine, and the score candidates are ordered by: similarity after
    removing each language's mean vector (the mined ThemeModel's), so a Polish
    query is not drawn to Polish statements for being Polish; plain cosine when
    nothing has been mined yet."""
    raw = X @ qvec
    if model is None or not len(model.language_means):
        return raw, raw
    deb = LanguageDebiaser()  # the one rule (nlp.debias), with the model's stored means
    project = bool(model.params.get("project", False))
    Y = deb.transform(X, languages, model.language_means, model.global_mean, project=project)
    qy = deb.transform(
        qvec[None, :], [qlang], model.language_means, model.global_mean, project=project
    )[0]
    return raw, Y @ qy
