"""Curation wiring without a database: every curation event has a real
projector (not log-only: the read models change at once), and the API
exposes each correction under the documented method and path."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute

from api.routers.curation import router
from peerlearn import eventstore
from peerlearn.mining.curation import CURATION_EVENTS


def test_curation_events_have_projectors() -> None:
    assert not eventstore.unprojected_types() & set(CURATION_EVENTS)
    for t in CURATION_EVENTS:
        # declaring a type log-only is refused exactly when it has a projector
        with pytest.raises(ValueError, match="has a projector"):
            eventstore.no_read_model(t)


def test_curation_routes() -> None:
    routes = {
        (m, r.path) for r in router.routes if isinstance(r, APIRoute) for m in r.methods or ()
    }
    assert {
        ("PUT", "/v1/themes/{theme_id}/title"),
        ("POST", "/v1/themes/{theme_id}/merge"),
        ("POST", "/v1/statements/move"),
        ("PUT", "/v1/statements/{statement_id}/kind"),
        ("PUT", "/v1/statements/{statement_id}/hidden"),
        ("GET", "/v1/curation/events"),
    } <= routes
