"""The FastAPI application: manager and analyst API under /v1, /health, /ui.

``create_app`` opens the database pool and the Temporal client in the lifespan
so every request reuses them; tests pass their own settings.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api import auth, limits, problems
from api.routers import (
    calendar,
    cycles,
    documents,
    exports,
    health,
    mail,
    meetings,
    mining_runs,
    notes,
    practices,
    programmes,
    reports,
    search,
    theme_map,
    themes,
    ui,
)
from peerlearn import db
from peerlearn.settings import Settings, get_settings
from peerlearn.temporal import connect

log = logging.getLogger("peerlearn.api")

# One router per resource; each module exposes ``router``.
# theme_map must stay before any /v1/themes/{id} router, or 'map' is read as an id.
ROUTERS = [health.router, theme_map.router, ui.router]
ROUTERS += [
    themes.router,
    practices.router,
    search.router,
    mining_runs.router,
    reports.router,
    exports.router,
]
ROUTERS += [programmes.router, cycles.router, meetings.router, notes.router]
ROUTERS += [documents.router]  # note originals (issue 12)
ROUTERS += [calendar.router, mail.router]  # issue 13: calendar feed, caught mail


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conninfo = db.database_url(settings)
        db.wait_for_database(conninfo)
        db.migrate(conninfo)
        app.state.pool = await db.open_pool(conninfo)
        try:
            app.state.temporal = await connect(settings)
        except Exception as exc:  # the API still serves reads; /health says why
            log.warning("Temporal not reachable at %s: %s", settings.temporal_target, exc)
            app.state.temporal = None
        try:
            yield
        finally:
            await app.state.pool.close()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from the installed
    # fastapi-offline package (served under /static-offline-docs), not from a CDN,
    # so the docs work on an air-gapped machine and leak no visit to a third party.
    app = FastAPIOffline(
        title="peerlearn",
        version="0.1.0",
        description=(
            "Peer-learning cycles driven by Temporal workflows, and a multilingual "
            "lessons-learnt miner. Errors are RFC 9457 problem+json."
        ),
        lifespan=lifespan,
        # no "validate at validator.swagger.io" call from the docs page
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.settings = settings
    problems.install(app)
    auth.install(app)  # every /v1 request needs a valid key (401/403 problem+json)
    limits.install(app, settings)  # outermost: 413 / bad input before auth and routing
    for router in ROUTERS:
        app.include_router(router)
    return app
