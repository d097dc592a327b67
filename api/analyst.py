"""FastAPI dependencies of the analyst endpoints: the filters as query
parameters, the pool and settings as async dependencies, and a fast JSON answer.

The queries themselves live in :mod:`peerlearn.readside` (no HTTP there), so the
worker's report builder uses them without loading FastAPI.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

import pydantic_core
from fastapi import Depends, Query, Request, Response
from psycopg_pool import AsyncConnectionPool

from api.problems import Problem
from nlp.types import KINDS
from peerlearn.readside.filters import Filters
from peerlearn.settings import Settings

# The statement kinds as an OpenAPI enum; the one definition is nlp.types.KINDS.
Kind = Literal[KINDS]  # type: ignore[valid-type]


async def _filters(  # async: a sync dependency costs a thread-pool hop per request
    programme: Annotated[str | None, Query(description="programme id")] = None,
    cycle: Annotated[str | None, Query(description="cycle id")] = None,
    language: Annotated[
        str | None, Query(pattern=r"^[a-z]{2}$", description="ISO 639-1 code, e.g. en, sv, pl")
    ] = None,
    kind: Annotated[Kind | None, Query(description="statement kind")] = None,
    organisation: Annotated[str | None, Query(description="author organisation id")] = None,
    since: Annotated[date | None, Query(description="statements dated on or after")] = None,
    until: Annotated[date | None, Query(description="statements dated on or before")] = None,
    min_cycles: Annotated[
        int, Query(ge=0, le=1000, description="themes said in at least this many distinct cycles")
    ] = 0,
) -> Filters:
    if since and until and since > until:
        raise Problem(422, "since must not be after until")
    return Filters(programme, cycle, language, kind, organisation, since, until, min_cycles)


FiltersDep = Annotated[Filters, Depends(_filters)]


# The hot read endpoints (themes, search, practices) take the pool and settings
# through async dependencies: FastAPI runs a plain ``def`` dependency in the
# thread pool, two thread hand-offs per request under load.
async def _pool(request: Request) -> AsyncConnectionPool:
    pool: AsyncConnectionPool = request.app.state.pool
    return pool


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


FastPool = Annotated[AsyncConnectionPool, Depends(_pool)]
FastSettings = Annotated[Settings, Depends(_settings)]


def json_response(body: Any) -> Response:
    """Serialise once with pydantic-core (dates as ISO strings, as FastAPI would),
    skipping FastAPI's validation and ``jsonable_encoder`` walk of a plain dict."""
    return Response(pydantic_core.to_json(body), media_type="application/json")
