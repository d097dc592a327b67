"""GET /v1/themes/map: every statement as a point on a 2-D map, coloured by theme.

The analyst page draws this as a scatter. The coordinates (the miner's stored
projection, or a de-biased PCA) come from :mod:`peerlearn.readside.theme_map`;
this module is the HTTP side: the cache, the filters and the sample.

The projection is computed once per *data version* (a cheap fingerprint of the
statements and themes tables) and per grant, then cached in the app, so
changing the page's filters never recomputes it. Filters (programme, language)
are applied after projecting, so a point stays where it is whichever filter
the analyst picks.

This router must be registered before the one serving ``/v1/themes/{id}``,
otherwise ``map`` would be read as a theme id.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.auth import CurrentPrincipal
from api.deps import Pool
from peerlearn.readside.theme_map import MAX_TEXT, Projection, data_version, project

router = APIRouter(prefix="/v1/themes", tags=["themes"])

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


def _cache(request: Request) -> OrderedDict[tuple[Any, ...], Projection]:
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
    version = await data_version(pool, grant)
    key = (version, tuple(grant) if grant is not None else None)
    cache = _cache(request)
    proj = cache.get(key)
    if proj is None:
        proj = await project(pool, grant)
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
