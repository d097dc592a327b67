"""The SQL of semantic search: candidate statements near a query vector.

One query returns the candidates as a single row (their statements' ids and
languages as arrays, the distinct candidate vectors as one ``vector_send``
blob that numpy reads without a Python object per number); the caller re-ranks
in numpy and fetches only the winners' columns with :func:`statement_rows`.
This keeps ``GET /v1/search`` inside its 50 ms p95 budget on two cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from nlp.types import EMBEDDING_DIM
from peerlearn.readside.filters import label_columns

CANDIDATES = 200
EF_SEARCH = 200  # HNSW beam: at least CANDIDATES, or the index returns fewer

_COLUMNS = (
    "s.id AS statement_id, s.text, s.language, s.kind, s.note_id, s.meeting_id, s.cycle_id,"
    " s.programme_id, s.organisation_id, s.source_date AS date, s.theme_id"
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


@dataclass
class Candidates:
    """Visible statements near the query: ``vectors[i]`` is ``ids[i]``'s embedding."""

    ids: list[str]
    languages: list[str]
    vectors: np.ndarray
    model_version: datetime | None
    exact: bool


async def _fetch(conn: AsyncConnection[Any], sql: str, params: dict[str, Any]) -> dict[str, Any]:
    cur = await conn.cursor(row_factory=dict_row, binary=True).execute(sql, params)
    row = await cur.fetchone()
    assert row is not None  # aggregates always return one row
    return dict(row)


def _vectors(blob: bytes | None, dim: int = EMBEDDING_DIM) -> np.ndarray:
    """Rows of pgvector's binary format (int16 dim, int16 unused, float4 BE values)
    concatenated by ``string_agg``: the 4-byte header is one float-sized column."""
    if not blob:
        return np.zeros((0, dim), np.float32)
    return np.frombuffer(blob, dtype=">f4").reshape(-1, dim + 1)[:, 1:].astype(np.float32)


async def candidates(
    conn: AsyncConnection[Any],
    qvec: np.ndarray,
    where: str,
    params: dict[str, Any],
    limit: int,
) -> Candidates:
    """The HNSW proposals that pass ``where`` (``statement_where``'s clause and
    parameters); when the filters are so narrow that fewer than ``limit`` pass,
    an exact scan over the filtered statements answers instead."""
    params = {**params, "q": qvec, "k": max(CANDIDATES, limit * 4)}
    # SET LOCAL lasts until the pool commits at the end of the caller's block
    await conn.execute(f"SET LOCAL hnsw.ef_search = {max(EF_SEARCH, int(params['k']))}")
    cand = await _fetch(conn, _CANDIDATES_SQL.format(where=where), params)
    exact = False
    if len(cand["ids"] or ()) < limit and where != "TRUE":
        exact = True
        cand = await _fetch(conn, _EXACT_SQL.format(where=where), params)
    ids: list[str] = list(cand["ids"] or ())
    X = _vectors(cand["vecs"], int(qvec.shape[0]))
    if ids and cand["idx"] is not None:
        X = X[np.asarray(cand["idx"], dtype=np.intp)]
    return Candidates(ids, list(cand["languages"] or ()), X, cand["model_version"], exact)


async def statement_rows(
    conn: AsyncConnection[Any], ids: list[str], scope: list[str] | None
) -> dict[str, dict[str, Any]]:
    """The columns a search hit shows, by statement id (only for the winners);
    theme labels as ``scope`` may read them (:func:`.filters.label_scope`)."""
    if not ids:
        return {}
    params: dict[str, Any] = {"ids": ids}
    label, _ = label_columns(scope, params)
    cur = await conn.cursor(row_factory=dict_row).execute(
        f"SELECT {_COLUMNS}, {label} AS theme_label FROM statements s"
        " LEFT JOIN themes t ON t.id = s.theme_id WHERE s.id = ANY(%(ids)s)",
        params,
    )
    return {r["statement_id"]: dict(r) for r in await cur.fetchall()}
