"""Body and note limits as pure checks (the middleware and routers call these)."""

from __future__ import annotations

import pytest

from api.limits import check_json_body, check_note_text, page_size, validate_note_text
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


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a\x00b", ["NUL", "position 1", "line 1, column 2"]),
        ("ok\nx\ud800", ["surrogate", "U+D800", "line 2, column 2"]),
        ("\x1b[31m", ["U+001B", "position 0"]),
        ("bell\x07", ["U+0007"]),
        ("del\x7f", ["U+007F"]),
        ("c1\x85", ["U+0085"]),
        ("page\x0cbreak", ["U+000C"]),
    ],
)
def test_validate_note_text_names_the_character_and_where(text: str, words: list[str]) -> None:
    with pytest.raises(Problem) as exc:
        validate_note_text(text)
    assert exc.value.status == 422
    for w in words:
        assert w in exc.value.detail


def test_tabs_newlines_and_any_script_are_fine() -> None:
    text = "Tab\there\r\nWindows line\nŁódź, Växa, 東京, emoji 🎉, RTL שלום"
    assert validate_note_text(text) is text


def test_check_note_text_applies_the_character_rule_first(settings: Settings) -> None:
    with pytest.raises(Problem, match="NUL"):
        check_note_text(" \x00 ", settings)  # not "empty": the worse problem is named
