"""Body and note limits as pure checks (the middleware and routers call these)."""

from __future__ import annotations

import pytest

from api.limits import check_json_body, check_note_text, page_size
from api.problems import Problem
from peerlearn.settings import Settings


@pytest.fixture
def settings() -> Settings:
    return Settings(max_note_chars=100, max_statements_per_note=3, max_page_size=20)


def test_json_nul_surrogate_and_depth_are_refused() -> None:
    for body, status in (
        (b'{"t": "a\\u0000b"}', 422),
        (b'{"t": "\\ud800"}', 422),
        (b"[" * 40 + b"]" * 40, 422),
        (b'{"t": "\xff"}', 400),
    ):
        with pytest.raises(Problem) as exc:
            check_json_body(body)
        assert exc.value.status == status, body


def test_ordinary_and_malformed_json_pass_to_the_router() -> None:
    check_json_body('{"t": "Bra besök, Łódź \\n ok", "n": [1, [2, [3]]]}'.encode())
    check_json_body(b'{"unterminated": ')  # FastAPI answers malformed JSON itself


def test_note_text_limits(settings: Settings) -> None:
    check_note_text("One. Two. Three.", settings)
    for text, reason in (
        ("  \n ", "empty"),
        ("x" * 101, "longer than 100"),
        ("One. Two. Three. Four.", "more than 3 statements"),
    ):
        with pytest.raises(Problem, match=reason):
            check_note_text(text, settings)


def test_page_size_bounds(settings: Settings) -> None:
    assert page_size(None, settings) == 20
    assert page_size(5, settings) == 5
    for bad in (0, 21):
        with pytest.raises(Problem):
            page_size(bad, settings)
