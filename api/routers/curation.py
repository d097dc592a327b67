"""Analyst curation of themes and statements (issue 11 item 6).

HTTP only: each route validates the body, then :mod:`peerlearn.mining.curation`
checks the grant and appends one event on the mining stream, whose projector
applies the correction at once; the next re-mine re-applies it. Analysts,
managers and admins may curate within their grant; outside it is 404 as for an
unknown id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.analyst import FastPool
from api.auth import require
from peerlearn.access import Principal, Role
from peerlearn.eventstore import Event
from peerlearn.mining import curation

router = APIRouter(tags=["curation"])
Curator = require(Role.analyst, Role.manager)


class TitleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=curation.MAX_TITLE)
    pinned: bool = False


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    into: str = Field(min_length=1, max_length=200)


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    statement_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=curation.MAX_MOVE
    )
    theme_id: str | None = Field(default=None, min_length=1, max_length=200)
    new_theme_title: str | None = Field(default=None, min_length=1, max_length=curation.MAX_TITLE)


class KindIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=40)


class HiddenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hidden: bool = True


def _out(ev: Event) -> dict[str, Any]:
    return {"event": ev.type, "position": ev.global_position, **ev.payload}


@router.put("/v1/themes/{theme_id}/title", summary="Rename a theme; pinned titles survive re-mines")
async def put_title(
    theme_id: str, body: TitleIn, pool: FastPool, principal: Principal = Curator
) -> dict[str, Any]:
    async with pool.connection() as conn, conn.transaction():
        ev = await curation.rename_theme(conn, principal, theme_id, body.title, body.pinned)
    return _out(ev)


@router.post("/v1/themes/{theme_id}/merge", summary="Merge this theme into another, for good")
async def post_merge(
    theme_id: str, body: MergeIn, pool: FastPool, principal: Principal = Curator
) -> dict[str, Any]:
    async with pool.connection() as conn, conn.transaction():
        ev = await curation.merge_themes(conn, principal, theme_id, body.into)
    return _out(ev)


@router.post("/v1/statements/move", summary="Move statements to another or a new theme")
async def post_move(body: MoveIn, pool: FastPool, principal: Principal = Curator) -> dict[str, Any]:
    async with pool.connection() as conn, conn.transaction():
        ev = await curation.move_statements(
            conn, principal, body.statement_ids, body.theme_id, body.new_theme_title
        )
    return _out(ev)


@router.put("/v1/statements/{statement_id}/kind", summary="Correct a statement's kind")
async def put_kind(
    statement_id: str, body: KindIn, pool: FastPool, principal: Principal = Curator
) -> dict[str, Any]:
    async with pool.connection() as conn, conn.transaction():
        ev = await curation.correct_kind(conn, principal, statement_id, body.kind)
    return _out(ev)


@router.put("/v1/statements/{statement_id}/hidden", summary="Hide (or show again) a statement")
async def put_hidden(
    statement_id: str, body: HiddenIn, pool: FastPool, principal: Principal = Curator
) -> dict[str, Any]:
    async with pool.connection() as conn, conn.transaction():
        ev = await curation.hide_statement(conn, principal, statement_id, body.hidden)
    return _out(ev)


@router.get("/v1/themes/{theme_id}/statements", summary="A theme's statements, for curation")
async def get_theme_statements(
    theme_id: str,
    pool: FastPool,
    principal: Principal = Curator,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> dict[str, Any]:
    async with pool.connection() as conn:
        items = await curation.theme_statements(conn, principal, theme_id, limit)
    return {"items": items}


@router.get("/v1/curation/events", summary="The latest curation events in the caller's grant")
async def get_events(
    pool: FastPool,
    principal: Principal = Curator,
    theme_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    async with pool.connection() as conn:
        items = await curation.curation_events(conn, principal, theme_id, limit)
    return {"items": items}
