"""The analyst filters, the caller's grant as SQL, and cursor pagination.

Every read-side query starts from ``statements`` filtered by the caller's
grant, so a theme, count, practice or source from a programme the key cannot
see never shows up: themes are cross-programme, their visible part is what is
counted.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from peerlearn.access import BadRequest, Principal, Role


@dataclass
class Filters:
    programme: str | None = None
    cycle: str | None = None
    language: str | None = None
    kind: str | None = None
    organisation: str | None = None
    since: date | None = None
    until: date | None = None
    min_cycles: int = 0


def statement_where(
    principal: Principal, f: Filters, alias: str = "s", *, kind: bool = True
) -> tuple[str, dict[str, Any]]:
    """SQL conditions on ``statements`` for the grant and the filters (named params).

    A ``programme`` filter outside the grant raises the principal's access error
    rather than silently answering nothing."""
    a = alias
    conds: list[str] = [f"NOT {a}.hidden"]  # hidden by an analyst (curation, 0016)
    params: dict[str, Any] = {}
    visible = principal.programme_filter()
    if visible is not None:
        conds.append(f"{a}.programme_id = ANY(%(visible)s)")
        params["visible"] = visible
    if not facilitator(principal):
        conds.append(hidden_notes_clause(a))
    if f.programme:
        principal.check_programme(f.programme)
        conds.append(f"{a}.programme_id = %(programme)s")
        params["programme"] = f.programme
    for col, key in (
        ("cycle_id", "cycle"),
        ("language", "language"),
        ("organisation_id", "organisation"),
    ):
        v = getattr(f, key)
        if v:
            conds.append(f"{a}.{col} = %({key})s")
            params[key] = v
    if kind and f.kind:
        conds.append(f"{a}.kind = %(kind)s")
        params["kind"] = f.kind
    if f.since:
        conds.append(f"{a}.source_date >= %(since)s")
        params["since"] = f.since
    if f.until:
        conds.append(f"{a}.source_date <= %(until)s")
        params["until"] = f.until
    return (" AND ".join(conds) or "TRUE"), params


def visible_clause(principal: Principal, alias: str = "s") -> tuple[str, dict[str, Any]]:
    """Only the grant (no filters): for supporting statements of a practice."""
    visible = principal.programme_filter()
    hidden = "" if facilitator(principal) else " AND " + hidden_notes_clause(alias)
    if visible is None:
        return "TRUE" + hidden, {}
    return f"{alias}.programme_id = ANY(%(visible)s)" + hidden, {"visible": visible}


def facilitator(principal: Principal) -> bool:
    """Admin and manager keys read facilitators-only notes of their grant (issue 12)."""
    return principal.role in (Role.admin, Role.manager)


def hidden_notes_clause(alias: str = "s") -> str:
    """Statements of facilitators-only notes are out of everyone else's results
    and counts (notes.visibility, migration 0015)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM notes hn WHERE hn.id = {alias}.note_id"
        " AND hn.visibility = 'facilitators')"
    )


# ---- theme labels ----------------------------------------------------------------------


def label_scope(principal: Principal, f: Filters | None = None) -> list[str] | None:
    """Whose statements a theme's label and keyphrases may come from: the filtered
    programme, else the caller's grant; None (the theme's own label, built over
    every programme) only for an unrestricted caller looking at everything."""
    if f is not None and f.programme:
        return [f.programme]
    return principal.programme_filter()


def label_columns(
    scope: list[str] | None, params: dict[str, Any], alias: str = "t"
) -> tuple[str, str]:
    """SQL for a theme's label and keyphrases as ``scope`` may read them
    (migration 0009: ``theme_label_for`` / ``theme_keyphrases_for``, built
    only from those programmes' statements, so a restricted key never sees a
    word another programme wrote; the theme id when none has a label)."""
    if scope is None:
        return f"{alias}.label", f"{alias}.keyphrases"
    params["label_scope"] = scope
    return (
        f"coalesce(theme_label_for({alias}.id, %(label_scope)s::text[]), {alias}.id)",
        f"theme_keyphrases_for({alias}.id, %(label_scope)s::text[])",
    )


def title_columns(
    scope: list[str] | None, params: dict[str, Any], alias: str = "t"
) -> tuple[str, str]:
    """SQL for a theme's readable title and its titles per language as ``scope``
    may read them (migration 0014; a programme's label is its title, so a
    restricted caller's title is ``theme_label_for``'s text)."""
    if scope is None:
        return f"coalesce({alias}.title, {alias}.label)", f"{alias}.titles"
    params["label_scope"] = scope
    return (
        f"coalesce(theme_label_for({alias}.id, %(label_scope)s::text[]), {alias}.id)",
        f"theme_titles_for({alias}.id, %(label_scope)s::text[])",
    )


# ---- cursors ---------------------------------------------------------------------------

# A cursor is the sort key of the last row of a page; each position holds one of
# these types (numbers, ids, dates as text). Anything else did not come from us.
_CURSOR_TYPES = (int, float, str)


def encode_cursor(values: list[Any]) -> str:
    raw = json.dumps(values, default=str, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(
    cursor: str | None, n: int, types: tuple[type | tuple[type, ...], ...] | None = None
) -> list[Any] | None:
    """The sort key a previous page's ``next_cursor`` carried, or :class:`BadRequest`.

    ``types`` (one per position) is checked too, so a tampered cursor whose
    values PostgreSQL could not compare with the sort keys is refused here
    instead of failing inside the query."""
    if not cursor:
        return None
    try:
        pad = "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(cursor + pad))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadRequest("invalid cursor; pass the next_cursor of a previous page") from exc
    if not isinstance(values, list) or len(values) != n:
        raise BadRequest("invalid cursor; pass the next_cursor of a previous page")
    for i, v in enumerate(values):
        want = types[i] if types is not None else _CURSOR_TYPES
        if isinstance(v, bool) or not isinstance(v, want) or not _storable(v):
            raise BadRequest("invalid cursor; pass the next_cursor of a previous page")
    return values


def _storable(v: object) -> bool:
    """Whether PostgreSQL can take the value as a parameter: text without NUL
    and encodable as UTF-8 (JSON allows ``\\u0000`` and lone surrogates)."""
    if not isinstance(v, str):
        return True
    if "\x00" in v:
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
