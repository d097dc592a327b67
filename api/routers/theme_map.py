"""GET /v1/themes/map: every statement as a point on a 2-D map, coloured by theme.

The analyst page draws this as a scatter. Two sources of coordinates:

- ``stored``: the re-mine wrote ``statements.map_x/map_y`` (the miner's own
  projection) for most visible statements and we serve those; statements
  assigned since then sit near their theme's centre, marked ``approximate``;
- ``pca``: otherwise we project the embeddings here, after removing the
  language signal (each language's mean subtracted, vectors re-normalised),
  because raw e5 vectors cluster by language, not by topic, and a map that
  separates Swedish from Polish tells an analyst nothing.

The projection is computed once per *data version* (a cheap fingerprint of the
statements and themes tables) and per grant, then cached in the app, so
changing the page's filters never recomputes it. Filters (programme, language)
are applied after projecting, so a point stays where it is whichever filter
the analyst picks.

This router must be registered before the one serving ``/v1/themes/{id}``,
otherwise ``map`` would be read as a theme id.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query, Request
from psycopg.rows import dict_row
from pydantic import BaseModel, Field

from api.auth import CurrentPrincipal
from api.deps import Pool

router = APIRouter(prefix="/v1/themes", tags=["themes"])

MAX_TEXT = 280  # characters of a statement sent for the hover label
STORED_SHARE = 0.5  # serve the miner's coordinates once at least this share has them
_CACHE_SIZE = 4


class MapTheme(BaseModel):
    id: str
    label: str
    size: int = Field(description="statements of this theme on the map (before sampling)")


class MapPoint(BaseModel):
    id: str = Field(description="statement id")
    x: float
    y: float
    theme_id: str | None
    language: str
    programme_id: str | None
    cycle_id: str | None
    kind: str
    text: str = Field(description=f"the statement, cut at {MAX_TEXT} characters")
    approximate: bool = Field(
        default=False,
        description="placed near its theme's centre: mined after the stored projection",
    )


class ThemeMap(BaseModel):
    version: str = Field(description="fingerprint of the data the projection was computed on")
    projection: Literal["stored", "pca", "empty"]
    explained_variance: list[float] | None = Field(
        default=None, description="share of variance on each axis (pca only)"
    )
    total: int = Field(description="statements matching the filters")
    count: int = Field(description="points returned (a deterministic sample when total > limit)")
    languages: dict[str, int] = Field(description="points per language, before the language filter")
    themes: list[MapTheme]
    points: list[MapPoint]


@dataclass(frozen=True)
class _Projection:
    projection: Literal["stored", "pca", "empty"]
    explained: list[float] | None
    rows: list[dict[str, Any]]  # statement rows with x, y
    labels: dict[str, str]


def _grant_clause(grant: list[str] | None) -> tuple[str, list[Any]]:
    if grant is None:
        return "TRUE", []
    return "programme_id = ANY(%s)", [grant]


async def _data_version(pool: Pool, grant: list[str] | None) -> str:
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
        await cur.execute(sql, params)  # built from constants
        row = await cur.fetchone()
    raw = "|".join(str(v) for v in (row or {}).values())
    return hashlib.sha1(raw.encode()).hexdigest()[:16]  # noqa: S324  # a cache key, not security


def _debiased_pca(vectors: np.ndarray, languages: list[str]) -> tuple[np.ndarray, list[float]]:
    """2-D PCA of the embeddings after removing each language's mean.

    Languages with fewer than three statements have no reliable mean of their
    own and get the global one. Axis signs are fixed (largest loading positive)
    so the map does not flip between data versions.
    """
    x = vectors.astype(np.float64, copy=True)
    langs = np.asarray(languages)
    global_mean = x.mean(axis=0)
    for lang in np.unique(langs):
        mask = langs == lang
        x[mask] -= x[mask].mean(axis=0) if mask.sum() >= 3 else global_mean
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x /= np.where(norms > 1e-9, norms, 1.0)
    x -= x.mean(axis=0)
    if x.shape[0] < 2:
        return np.zeros((x.shape[0], 2)), [0.0, 0.0]
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    components = vt[:2]
    signs = np.sign(components[np.arange(components.shape[0]), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    coords = x @ components.T
    if coords.shape[1] < 2:
        coords = np.hstack([coords, np.zeros((coords.shape[0], 2 - coords.shape[1]))])
    var = s**2
    explained = [float(v / var.sum()) if var.sum() > 0 else 0.0 for v in var[:2]]
    return coords, explained


def _place_unmapped(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def _as_array(v: Any) -> np.ndarray:
    """pgvector hands back a ``Vector`` (binary protocol) or an ndarray (text)."""
    to_numpy = getattr(v, "to_numpy", None)
    return np.asarray(to_numpy() if to_numpy else v, dtype=np.float32)


async def _project(pool: Pool, grant: list[str] | None) -> _Projection:
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
        rows = list(await cur.fetchall())
        theme_ids = sorted({r["theme_id"] for r in rows if r["theme_id"]})
        await cur.execute("SELECT id, label FROM themes WHERE id = ANY(%s)", (theme_ids,))
        labels = {r["id"]: r["label"] for r in await cur.fetchall()}

    if not rows:
        return _Projection("empty", None, [], labels)
    if stored:
        return _Projection("stored", None, _place_unmapped(rows), labels)

    vectors = np.vstack([_as_array(r.pop("embedding")) for r in rows])
    coords, explained = await asyncio.to_thread(
        _debiased_pca, vectors, [r["language"] for r in rows]
    )
    for r, (x, y) in zip(rows, coords, strict=True):
        r.pop("map_x"), r.pop("map_y")
        r["x"], r["y"] = round(float(x), 5), round(float(y), 5)
    return _Projection("pca", explained, rows, labels)


def _cache(request: Request) -> OrderedDict[tuple[Any, ...], _Projection]:
    cache = getattr(request.app.state, "theme_map_cache", None)
    if cache is None:
        cache = OrderedDict()
        request.app.state.theme_map_cache = cache
    return cache


def _cut(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1].rstrip() + "…"


@router.get("/map", response_model=ThemeMap, summary="2-D map of statements coloured by theme")
async def theme_map(
    request: Request,
    pool: Pool,
    principal: CurrentPrincipal,
    programme: Annotated[str | None, Query(description="only this programme's statements")] = None,
    language: Annotated[
        str | None, Query(min_length=2, max_length=3, description="ISO 639-1 code")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=20_000, description="most points returned")] = 5000,
) -> ThemeMap:
    if programme is not None:
        principal.check_programme(programme)
    grant = principal.programme_filter()
    version = await _data_version(pool, grant)
    key = (version, tuple(grant) if grant is not None else None)
    cache = _cache(request)
    proj = cache.get(key)
    if proj is None:
        proj = await _project(pool, grant)
        cache[key] = proj
        while len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)

    rows = [r for r in proj.rows if programme is None or r["programme_id"] == programme]
    languages: dict[str, int] = {}
    for r in rows:
        languages[r["language"]] = languages.get(r["language"], 0) + 1
    if language is not None:
        rows = [r for r in rows if r["language"] == language.lower()]
    sizes: dict[str, int] = {}
    for r in rows:
        if r["theme_id"]:
            sizes[r["theme_id"]] = sizes.get(r["theme_id"], 0) + 1
    total = len(rows)
    if total > limit:  # deterministic sample: the same request draws the same points
        keep = np.sort(np.random.default_rng(0).choice(total, size=limit, replace=False))
        rows = [rows[i] for i in keep]
    themes = [
        MapTheme(id=t, label=proj.labels.get(t, t), size=n)
        for t, n in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    points = [
        MapPoint(
            id=r["id"],
            x=r["x"],
            y=r["y"],
            theme_id=r["theme_id"],
            language=r["language"],
            programme_id=r["programme_id"],
            cycle_id=r["cycle_id"],
            kind=r["kind"],
            text=_cut(r["text"]),
            approximate=r.get("approximate", False),
        )
        for r in rows
    ]
    return ThemeMap(
        version=version,
        projection=proj.projection,
        explained_variance=proj.explained,
        total=total,
        count=len(points),
        languages=dict(sorted(languages.items())),
        themes=themes,
        points=points,
    )
