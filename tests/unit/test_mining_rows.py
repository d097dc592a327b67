"""The mining store's row <-> ``nlp.types`` conversions and theme-id keys."""

from __future__ import annotations

from datetime import date

from nlp.types import Statement
from peerlearn.mining.store import (
    STATEMENT_COLUMNS,
    raw_theme_id,
    statement_from_row,
    statement_row,
    theme_key,
)


def _statement(**kw: object) -> Statement:
    base: dict[str, object] = {
        "id": "n1#2",
        "source_id": "n1",
        "text": "Weekly calls kept members engaged.",
        "language": "en",
        "kind": "lesson",
        "position": 2,
        "heading": "Lessons",
        "content_hash": "h" * 64,
        "lemmas": ["weekly", "call"],
        "programme": "p1",
        "cycle": "c1",
        "meeting": "m1",
        "organisation": "org-a",
        "date": "2025-02-03",
    }
    base.update(kw)
    return Statement.from_dict(base)


def test_a_statement_survives_a_round_trip_through_its_row() -> None:
    s = _statement()
    values = statement_row(s, "T0001")
    row = dict(zip((*STATEMENT_COLUMNS, "theme_id"), values, strict=True))
    assert row["note_id"] == "n1" and row["organisation_id"] == "org-a"
    assert row["source_date"] == date(2025, 2, 3) and row["theme_id"] == "T0001"
    assert statement_from_row(row) == s


def _row(s: Statement) -> dict[str, object]:
    return dict(zip((*STATEMENT_COLUMNS, "theme_id"), statement_row(s, None), strict=True))


def test_a_timestamp_date_is_stored_as_its_day_and_none_stays_none() -> None:
    row = _row(_statement(date="2025-02-03T23:00:00Z"))
    assert row["source_date"] == date(2025, 2, 3)
    row = _row(_statement(date=None))
    assert row["source_date"] is None and statement_from_row(row).date is None


def test_programme_scoped_theme_ids_never_collide_with_global_ones() -> None:
    assert theme_key("all", "T0001") == "T0001"
    assert theme_key("p1", "T0001") == "p1:T0001"
    assert raw_theme_id("p1", "p1:T0001") == "T0001"
    assert raw_theme_id("all", "T0001") == "T0001"
