"""GET /v1/themes and /v1/themes/{id}: recurring themes across cycles and languages.

HTTP only: the queries live in :mod:`peerlearn.readside.themes`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response

from api.analyst import FastPool, FiltersDep, json_response
from api.auth import CurrentPrincipal
from peerlearn.readside.themes import list_themes, theme_detail

router = APIRouter(prefix="/v1/themes", tags=["analyst"])


@router.get(
    "",
    summary="Themes with statement counts per language (ISO 639-1)",
    response_model=dict[str, Any],
)
async def get_themes(
    pool: FastPool,
    principal: CurrentPrincipal,
    filters: FiltersDep,
    sort: Annotated[Literal["recurrence", "size", "recency"], Query()] = "recurrence",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Response:
    async with pool.connection() as conn:
        items, next_cursor = await list_themes(
            conn, principal, filters, sort=sort, limit=limit, cursor=cursor
        )
    return json_response({"items": items, "next_cursor": next_cursor})


@router.get("/{theme_id}", summary="One theme: representatives, practices, sources, trend")
async def get_theme(
    theme_id: str,
    pool: FastPool,
    principal: CurrentPrincipal,
    filters: FiltersDep,
    sources_limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    async with pool.connection() as conn:
        return await theme_detail(conn, principal, filters, theme_id, sources_limit=sources_limit)
