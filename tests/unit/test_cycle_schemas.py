"""The cycle request schemas refuse crafted values before any arithmetic on them."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic import ValidationError

from api.schemas_cycles import CycleCreate, MarkHeldIn, PoliciesIn, iana_zone


def test_default_policies_are_valid() -> None:
    p = PoliciesIn()
    assert p.notes_due_after_days == 7 and p.reminder_offsets_days == [3.0, 1.0]


@pytest.mark.parametrize(
    "fields",
    [
        {"notes_due_after_days": 1e10},
        {"notes_due_after_days": math.inf},
        {"notes_due_after_days": math.nan},
        {"reminder_offsets_days": [1e300]},
        {"reminder_offsets_days": [-1]},
        {"reminder_offsets_days": [0]},
        {"reminder_offsets_days": [7]},  # the deadline itself: not inside the window
        {"reminder_offsets_days": [2, 2]},
        {"reminder_offsets_days": [0.01 * i for i in range(1, 12)]},
        {"follow_up_after_days": 1e6},
        {"min_notes_per_meeting": 10**9},
    ],
    ids=lambda f: next(iter(f)) + "=" + str(next(iter(f.values())))[:20],
)
def test_crafted_policies_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        PoliciesIn(**fields)


def test_dates_outside_2000_to_2100_are_refused() -> None:
    base = {"programme_id": "p", "title": "t"}
    ok = {"kind": "kickoff", "starts_at": "2031-02-01T10:00:00+01:00"}
    CycleCreate.model_validate({**base, "meetings": [ok]})
    for bad in ("9999-06-01T10:00:00Z", "1999-12-31T23:00:00Z"):
        with pytest.raises(ValidationError, match="outside"):
            CycleCreate.model_validate({**base, "meetings": [{**ok, "starts_at": bad}]})
    with pytest.raises(ValidationError, match="outside"):
        CycleCreate.model_validate({**base, "meetings": [ok], "ends_at": "9999-12-31T23:59:59Z"})
    with pytest.raises(ValidationError, match="outside"):
        MarkHeldIn.model_validate({"held_at": "1970-01-01T00:00:00Z"})


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory", "Mars/Olympus", ""])
def test_only_iana_zone_names_are_time_zones(zone: str) -> None:
    with pytest.raises(ValueError, match="time zone"):
        iana_zone(zone)


def test_real_zones_pass() -> None:
    for zone in ("UTC", "Europe/Warsaw", "America/Argentina/Buenos_Aires"):
        assert iana_zone(zone) == zone
