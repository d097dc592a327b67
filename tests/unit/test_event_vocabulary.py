"""The event vocabulary: stored names never change, unknown names are errors,
and every type is either projected or declared log-only."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from peerlearn import eventstore, projections
from peerlearn.events import EventType, UnknownEventType, event_type


def test_every_member_round_trips_through_its_stored_string() -> None:
    for t in EventType:
        assert event_type(t.value) is t
        assert json.loads(json.dumps({"type": t}))["type"] == t.value  # StrEnum stores its value


def test_stored_names_of_saved_histories_are_stable() -> None:
    # Values written to the events table and to tests/histories: renaming one
    # would orphan every stored event of that type.
    assert EventType.CYCLE_STARTED == "CycleStarted"
    assert EventType.NOTES_SUBMITTED == "NotesSubmitted"
    assert EventType.WRAP_UP_PUBLISHED == "WrapUpPublished"
    assert len({t.value for t in EventType}) == len(EventType)


def test_an_unknown_name_is_an_error_not_a_skip() -> None:
    with pytest.raises(UnknownEventType, match="NotesSubmited"):
        event_type("NotesSubmited")


def test_every_type_has_a_projector_or_is_declared_log_only() -> None:
    assert eventstore.unprojected_types() == set()


def test_mining_stream_types_are_log_only() -> None:
    for t in (EventType.THEMES_MINED, EventType.THEME_CREATED, EventType.THEME_CHANGED):
        assert t not in projections.CYCLE_STREAM


async def test_project_refuses_an_event_of_unknown_type() -> None:
    ev = eventstore.Event(
        global_position=1,
        stream_id="c1",
        version=1,
        type="NoSuchEvent",
        payload={},
        occurred_at=datetime.now(UTC),
        idempotency_key="k",
    )
    # no connection is needed: the type is checked before any projector runs
    with pytest.raises(UnknownEventType):
        await eventstore.project(None, ev)  # type: ignore[arg-type]


def test_a_type_cannot_get_two_projectors() -> None:
    async def another(conn: eventstore.Conn, ev: eventstore.Event) -> list[str]:
        return []

    with pytest.raises(ValueError, match="already has a projector"):
        eventstore.projector(EventType.NOTES_SUBMITTED)(another)
    with pytest.raises(ValueError, match="has a projector"):
        eventstore.no_read_model(EventType.NOTES_SUBMITTED)
