"""Thin adapter between database rows and the miner's dataclasses.

``nlp.types`` is written by the miner; the service only relies on the field
names of its contract. Building objects through :func:`_build` keeps the
service working if the miner adds fields with defaults or drops optional ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import date, datetime
from typing import Any


def _fields(cls: type) -> set[str] | None:
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls)}
    model_fields = getattr(cls, "model_fields", None)
    if model_fields is not None:
        return set(model_fields)
    return None


def _build(cls: type, **kwargs: Any) -> Any:
    names = _fields(cls)
    if names is not None:
        kwargs = {k: v for k, v in kwargs.items() if k in names}
    return cls(**kwargs)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _iso(d: Any) -> str | None:
    if d is None:
        return None
    if isinstance(d, datetime):
        return d.date().isoformat()
    if isinstance(d, date):
        return d.isoformat()
    return str(d)


def make_note(
    *,
    id: str,
    text: str,
    language: str | None = None,
    programme: str | None = None,
    cycle: str | None = None,
    meeting: str | None = None,
    organisation: str | None = None,
    date: Any = None,
) -> Any:
    from nlp.types import NoteIn

    return _build(
        NoteIn,
        id=id,
        text=text,
        language=language,
        programme=programme,
        cycle=cycle,
        meeting=meeting,
        organisation=organisation,
        date=_iso(date),
    )


def make_statement(
    *,
    id: str,
    source_id: str,
    text: str,
    position: int = 0,
    language: str = "en",
    kind: str = "other",
    heading: str | None = None,
    content_hash: str | None = None,
    lemmas: list[str] | None = None,
    programme: str | None = None,
    cycle: str | None = None,
    meeting: str | None = None,
    organisation: str | None = None,
    date: Any = None,
) -> Any:
    from nlp.types import Statement

    return _build(
        Statement,
        id=id,
        source_id=source_id,
        text=text,
        language=language,
        kind=kind,
        position=position,
        heading=heading,
        content_hash=content_hash or _default_hash(text),
        lemmas=list(lemmas or []),
        programme=programme,
        cycle=cycle,
        meeting=meeting,
        organisation=organisation,
        date=_iso(date),
    )


def _default_hash(text: str) -> str:
    try:  # the miner's own hashing, so cache keys agree with `peerlearn mine`
        from nlp import cache

        fn = getattr(cache, "content_hash", None)
        if callable(fn):
            return str(fn(text))
    except ImportError:
        pass
    return content_hash(text)


def statement_from_row(row: dict[str, Any]) -> Any:
    return make_statement(
        id=row["id"],
        source_id=row["note_id"],
        text=row["text"],
        position=row["position"],
        language=row["language"],
        kind=row["kind"],
        heading=row.get("heading"),
        content_hash=row["content_hash"],
        lemmas=row.get("lemmas") or [],
        programme=row.get("programme_id"),
        cycle=row.get("cycle_id"),
        meeting=row.get("meeting_id"),
        organisation=row.get("organisation_id"),
        date=row.get("source_date"),
    )


def jsonable(obj: Any) -> Any:
    """Plain JSON data from the miner's dataclasses / pydantic models / numpy values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if hasattr(obj, "model_dump"):
        return jsonable(obj.model_dump())
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [jsonable(v) for v in obj]
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return obj


def get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)
