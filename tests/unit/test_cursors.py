"""Page cursors: what we issue decodes back; anything else is a 400, not a 500."""

from __future__ import annotations

import base64
import json

import pytest

from peerlearn.access import BadRequest
from peerlearn.readside.filters import decode_cursor, encode_cursor


def test_a_cursor_round_trips() -> None:
    values = [-3, 0.5, "theme-7"]
    assert decode_cursor(encode_cursor(values), 3) == values


def test_no_cursor_means_the_first_page() -> None:
    assert decode_cursor(None, 2) is None and decode_cursor("", 2) is None


@pytest.mark.parametrize("bad", ["AA", "not base64 !", "e30", "W10"])
def test_garbage_is_refused(bad: str) -> None:
    with pytest.raises(BadRequest):
        decode_cursor(bad, 2)


def test_wrong_arity_or_types_are_refused() -> None:
    with pytest.raises(BadRequest):
        decode_cursor(encode_cursor([1, "a", "b"]), 2)
    tampered = base64.urlsafe_b64encode(json.dumps([{"x": 1}, "id"]).encode()).decode()
    with pytest.raises(BadRequest):
        decode_cursor(tampered, 2)
    with pytest.raises(BadRequest):
        decode_cursor(encode_cursor([True, "id"]), 2)
    with pytest.raises(BadRequest):
        decode_cursor(encode_cursor(["x", "id"]), 2, types=(int, str))
