"""The FastAPI application: manager and analyst API under /v1, /health, /ui.

``create_app`` opens the database pool and the Temporal client in the lifespan
so every request reuses them; tests pass their own settings.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from api import auth, limits, problems
from api.routers import (
    action_items,
    calendar,
    curation,
    cycles,
    documents,
    exports,
    feedback,
    health,
    imports,
    mail,
    me,
    meetings,
    mining_runs,
    note_privacy,
    notes,
    plan,
    practices,
    programmes,
    reports,
    search,
    self_assessment,
    theme_map,
    themes,
    topics,
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
ROUTERS += [me.router, plan.router]  # the key's principal; host-rotation planner
ROUTERS += [programmes.router, cycles.router, meetings.router, notes.router]
ROUTERS += [documents.router, imports.router]  # note originals, imports (issue 12)
ROUTERS += [note_privacy.router]  # correct/withdraw/visibility, erasure, export (issue 12)
# issue 13: calendar feed, caught mail, the review artefacts
ROUTERS += [calendar.router, mail.router, self_assessment.router, action_items.router]
ROUTERS += [feedback.router, action_items.programme_router]
ROUTERS += [topics.router]  # topic voting for a meeting's focus topics (issue 13)
ROUTERS += [curation.router]  # analyst corrections of the miner (issue 11 item 6)


async def load_model(settings: Settings) -> None:
    """Load the embedding model (and the query path) before the API serves.

    Importing torch and loading the model takes seconds of mostly GIL-holding
    work; done lazily by the first ``/v1/search`` it froze the whole event loop,
    ``/health`` included, for ~13 s (issue 10). Run from the lifespan, it finishes
    before uvicorn opens the port, so no request ever waits behind it. Without a
    prepared model the API still starts, and ``/health`` names the missing model.
    """
    from nlp.model import is_ready
    from peerlearn.mining.miner import get_miner_async, query_embedder

    if not is_ready(settings.resolved_model_dir):
        log.warning(
            "no prepared model at %s; search will load it on first use", settings.resolved_model_dir
        )
        return
    t0 = time.perf_counter()
    try:
        await get_miner_async(settings)
        await query_embedder(settings).embed("peerlearn warm-up query")  # first inference
    except (OSError, ImportError, RuntimeError, ValueError) as exc:
        # a miner that cannot load must not keep cycles and notes from being served:
        # search retries the load (and reports the error) on first use
        log.error("the embedding model did not load at start: %s", exc)
        return
    log.info("embedding model loaded in %.1fs", time.perf_counter() - t0)


def create_app(settings: Settings | None = None, *, preload_model: bool = False) -> FastAPI:
    """The app. ``preload_model``: load the model in the lifespan, before the
    port opens (``peerlearn api`` does; in-process tests share one loaded model)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        conninfo = db.database_url(settings)
        db.wait_for_database(conninfo)
        db.migrate(conninfo)
        if preload_model:
            await load_model(settings)
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


def create_served_app() -> FastAPI:
    """uvicorn's factory for ``peerlearn api``: the app with the model preloaded."""
    return create_app(preload_model=True)
