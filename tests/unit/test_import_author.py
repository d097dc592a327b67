"""The import's optional ``author_person`` column: read, normalised, in the
file's identity, and in CSV as in JSONL."""

from __future__ import annotations

import json

from peerlearn import importer

BASE = {
    "programme_id": "p", "programme_name": "P", "cycle_id": "c", "cycle_title": "C",
    "meeting_id": "m", "meeting_kind": "webinar", "meeting_date": "2024-03-01",
    "author_organisation": "vaxa", "language": "en", "text": "Mentoring works.",
}  # fmt: skip


def _parse(data: bytes, filename: str = "f.jsonl") -> importer.ParsedImport:
    return importer.parse(data, check_text=lambda _t: None, filename=filename)


def test_author_person_is_read_and_normalised() -> None:
    parsed = _parse(json.dumps({**BASE, "author_person": "  Anna   Berg "}).encode())
    assert parsed.lines[0].author_person == "Anna Berg"
    assert _parse(json.dumps(BASE).encode()).lines[0].author_person is None


def test_author_person_changes_the_file_identity() -> None:
    a = _parse(json.dumps({**BASE, "author_person": "Anna Berg"}).encode())
    b = _parse(json.dumps({**BASE, "author_person": "Bo Ek"}).encode())
    assert a.import_id != b.import_id


def test_author_person_column_in_csv() -> None:
    cols = [*BASE, "author_person"]
    row = [str(BASE[c]) if c in BASE else "Ewa Nowak" for c in cols]
    data = (",".join(cols) + "\n" + ",".join(row) + "\n").encode()
    assert _parse(data, "f.csv").lines[0].author_person == "Ewa Nowak"
