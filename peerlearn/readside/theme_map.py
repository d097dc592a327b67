"""The theme map's data: every visible statement as a point on a 2-D map.

Two sources of coordinates:

- ``stored``: the re-mine wrote ``statements.map_x/map_y`` (the miner's own
  projection) for most visible statements and we serve those; statements
  assigned since then sit near their theme's centre, marked ``approximate``;
- ``pca``: otherwise we project the embeddings here with
  :func:`nlp.debias.map_coordinates` (the ONE language de-biasing, then PCA),
  because raw e5 vectors cluster by language, not by topic, and a map that
  separates Swedish from Polish tells an analyst nothing.

:func:`data_version` is a cheap fingerprint the API caches projections by.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from nlp.debias import map_coordinates
from peerlearn.readside.filters import label_columns

MAX_TEXT = 280  # characters of a statement kept for the hover label (+1 to mark a cut)
STORED_SHARE = 0.5  # serve the miner's coordinates once at least this share has them

ProjectionKind = Literal["stored", "pca", "empty"]


@dataclass(frozen=True)
class Projection:
    """Statement rows (id, theme_id, language, programme_id, cycle_id, kind,
    text, x, y, approximate) with the theme labels they need."""

    projection: ProjectionKind
    explained: list[float] | None
    rows: list[dict[str, Any]]
    labels: dict[str, str]


# Facilitators-only notes (issue 12) are never on the map, whoever asks: the
# map is cached per grant, not per role. (notes has no note_id column, so the
# unqualified name is the outer statements row's.)
_NOT_FACILITATORS_ONLY = (
    "note_id NOT IN (SELECT id FROM notes WHERE visibility = 'facilitators')"
    " AND NOT hidden"  # statements an analyst hid (issue 11 curation) leave the map too
)


def _grant_clause(grant: list[str] | None) -> tuple[str, list[Any]]:
    if grant is None:
        return _NOT_FACILITATORS_ONLY, []
    return f"programme_id = ANY(%s) AND {_NOT_FACILITATORS_ONLY}", [grant]


async def data_version(pool: AsyncConnectionPool, grant: list[str] | None) -> str:
    """A fingerprint that changes when statements, their themes or labels change.

    One aggregate over the statements table (a few ms at 10k rows): cheaper
    than any bookkeeping the miner would have to remember to do.
    """
    where, params = _grant_clause(grant)
    sql = f"""
        SELECT count(*) AS n,
               count(map_x) AS mapped,
               coalesce(sum(hashtext(id || '|' || coalesce(theme_id, '')))::text, '0') AS sig,
               max(created_at)::text AS last_created,
               (SELECT max(updated_at)::text FROM themes) AS themes_at
        FROM statements WHERE {where}
    """  # the clause is one of two constants
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        row = await cur.fetchone()
    raw = "|".join(str(v) for v in (row or {}).values())
    return hashlib.sha1(raw.encode()).hexdigest()[:16]  # noqa: S324  # a cache key, not security


def place_unmapped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored coordinates as they are; a statement assigned since the last
    re-mine goes near its theme's centre (a small, deterministic offset) and is
    marked ``approximate``; an unassigned one without coordinates is left out."""
    sums: dict[str, list[float]] = {}
    for r in rows:
        if r["map_x"] is not None and r["theme_id"]:
            acc = sums.setdefault(r["theme_id"], [0.0, 0.0, 0.0])
            acc[0] += r["map_x"]
            acc[1] += r["map_y"]
            acc[2] += 1
    placed = []
    for r in rows:
        x, y = r.pop("map_x"), r.pop("map_y")
        if x is not None and y is not None:
            r["x"], r["y"], r["approximate"] = float(x), float(y), False
        elif r["theme_id"] in sums:
            sx, sy, n = sums[r["theme_id"]]
            h = hashlib.sha1(r["id"].encode()).digest()  # noqa: S324  # jitter, not security
            r["x"] = sx / n + (h[0] / 255 - 0.5) * 0.05
            r["y"] = sy / n + (h[1] / 255 - 0.5) * 0.05
            r["approximate"] = True
        else:
            continue
        placed.append(r)
    return placed


def _as_array(v: object) -> np.ndarray:
    """pgvector hands back a ``Vector`` (binary protocol) or an ndarray (text)."""
    to_numpy = getattr(v, "to_numpy", None)
    return np.asarray(to_numpy() if to_numpy else v, dtype=np.float32)


async def project(pool: AsyncConnectionPool, grant: list[str] | None) -> Projection:
    """Every statement of the grant with its map coordinates (see the module doc)."""
    where, params = _grant_clause(grant)
    columns = (
        "s.id, s.theme_id, s.language, s.programme_id, s.cycle_id, s.kind, "
        f"left(s.text, {MAX_TEXT + 1}) AS text, s.map_x, s.map_y"
    )
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT count(*) AS n, count(map_x) AS mapped FROM statements WHERE {where}",
            params,
        )
        counts = await cur.fetchone() or {"n": 0, "mapped": 0}
        # Statements mined since the last re-mine have no stored coordinates yet.
        stored = counts["n"] > 0 and counts["mapped"] >= STORED_SHARE * counts["n"]
        if stored:
            sql = f"SELECT {columns} FROM statements s WHERE {where} ORDER BY s.id"
        else:
            sql = (
                f"SELECT {columns}, e.embedding FROM statements s "
                f"JOIN embeddings e ON e.content_hash = s.content_hash WHERE {where} ORDER BY s.id"
            )
        await cur.execute(sql, params)  # built from constants
        rows = [dict(r) for r in await cur.fetchall()]
        theme_ids = sorted({r["theme_id"] for r in rows if r["theme_id"]})
        lparams: dict[str, Any] = {"ids": theme_ids}
        label, _ = label_columns(grant, lparams)
        await cur.execute(
            f"SELECT t.id, {label} AS label FROM themes t WHERE t.id = ANY(%(ids)s)", lparams
        )
        labels = {r["id"]: r["label"] for r in await cur.fetchall()}

    if not rows:
        return Projection("empty", None, [], labels)
    if stored:
        return Projection("stored", None, place_unmapped(rows), labels)

    vectors = np.vstack([_as_array(r.pop("embedding")) for r in rows])
    coords, explained = await asyncio.to_thread(
        map_coordinates, vectors, [r["language"] for r in rows]
    )
    for r, (x, y) in zip(rows, coords, strict=True):
        r.pop("map_x"), r.pop("map_y")
        r["x"], r["y"] = round(float(x), 5), round(float(y), 5)
    return Projection("pca", explained, rows, labels)
