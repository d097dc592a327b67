"""Which characters a stored text may hold: one rule for every writer.

PostgreSQL ``text`` and ``jsonb`` cannot hold NUL, UTF-8 cannot encode a lone
surrogate, and other control characters are never part of a meeting note
(they come from binary junk or a crafted request). The API refuses them with
422 (:func:`api.limits.validate_note_text`) and the cycle workflow's note
validator refuses them again, so a note that could never be stored is never
accepted: storage failing on it would otherwise be retried forever.

Standard library only: the deterministic workflow sandbox imports it.
"""

from __future__ import annotations

import re
import unicodedata

ALLOWED_CONTROLS = "\t\n\r"

# C0 and C1 controls and DEL except tab/newline/carriage return, and every
# surrogate code point (only a *lone* one can exist in a Python str).
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def first_forbidden_char(text: str) -> tuple[int, str] | None:
    """``(index, character)`` of the first character no stored text may hold."""
    m = _FORBIDDEN.search(text)
    return (m.start(), m.group()) if m else None


def describe_forbidden(text: str, what: str = "the note") -> str | None:
    """A message naming the problem and where it is, or None when the text is fine."""
    hit = first_forbidden_char(text)
    if hit is None:
        return None
    index, ch = hit
    code = f"U+{ord(ch):04X}"
    if ch == "\x00":
        found = f"a NUL character ({code})"
    elif 0xD800 <= ord(ch) <= 0xDFFF:
        found = f"a lone UTF-16 surrogate ({code})"
    else:
        name = unicodedata.name(ch, "")
        found = f"the control character {code}" + (f" {name}" if name else "")
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return f"{what} contains {found} at position {index} (line {line}, column {column})"


def strip_forbidden(text: str) -> str:
    """``text`` without the characters no stored text may hold: for free text
    that cannot be refused (a signal's reason), so storing it cannot fail."""
    return _FORBIDDEN.sub("", text)


def person_name(value: str, max_chars: int = 200) -> str:
    """A person's name as stored (a note's author, a key's holder): one line
    without the characters no stored text may hold, spacing normalised, not
    empty, at most ``max_chars``. The ValueError says what is wrong."""
    problem = describe_forbidden(value, "the name")
    if problem is None and any(c in value for c in ALLOWED_CONTROLS):
        problem = "a name is one line"
    if problem is not None:
        raise ValueError(problem)
    name = " ".join(value.split())
    if not name:
        raise ValueError("the name is empty")
    if len(name) > max_chars:
        raise ValueError(f"the name is longer than {max_chars} characters")
    return name
