"""GET /v1/practices: lessons, recommendations and best practices across themes,
one entry per idea (the same thing said in several languages is one practice,
with its wording per language and English glosses), ranked by independent
support (distinct cycles and organisations)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.analyst import FastPool, FiltersDep
from api.auth import CurrentPrincipal
from peerlearn.readside.themes import theme_practices

router = APIRouter(prefix="/v1/practices", tags=["analyst"])


@router.get("", summary="Practices, one per idea, ranked by independent support, with sources")
async def get_practices(
    pool: FastPool,
    principal: CurrentPrincipal,
    filters: FiltersDep,
    theme: Annotated[str | None, Query(description="only this theme")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    async with pool.connection() as conn:
        items, next_cursor = await theme_practices(
            conn,
            principal,
            filters,
            theme_ids=[theme] if theme else None,
            limit=limit,
            cursor=cursor,
        )
    if filters.min_cycles:
        items = [p for p in items if p["support_cycles"] >= filters.min_cycles]
    return {"items": items, "next_cursor": next_cursor}
