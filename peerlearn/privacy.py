"""Partners control their data (issue 12): correct, withdraw, visibility,
erasure and a copy of everything an organisation wrote.

Why crypto-shredding: the event log is append-only and its streams must stay
gap-free (versions 1..n), yet a partner may ask for their words to be erased.
So a note's text never reaches the ``events`` table in clear: :func:`seal`
(registered with :mod:`peerlearn.eventstore` as the storage transform of
NotesSubmitted and NoteCorrected) encrypts it with AES-256-GCM under a key of
its own (``note_keys``, with the author organisation). Erasing deletes the
key: the event stays as a tombstone whose text nobody can read, and the read
models (notes, statements, embeddings, practices, originals, reports) are
deleted row by row.

The commands here (:func:`correct`, :func:`withdraw`, :func:`set_visibility`,
:func:`erase`) run inside the caller's transaction and append to the note's
cycle stream through :func:`peerlearn.eventstore.append` (which locks the
stream head, so they interleave safely with the cycle workflow's own
appends). Statements are removed here, not in the projectors: a projection
rebuild replays the log and must not delete the statements that re-mining
produced for a corrected note.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg.rows import dict_row, tuple_row

from peerlearn import eventstore
from peerlearn.access import NotFound, Principal, Role
from peerlearn.events import EventType

Conn = psycopg.AsyncConnection[Any]

VISIBILITIES = ("facilitators", "programme", "public")
#: The payload field that replaces ``text`` in the stored event.
SEALED = "text_sealed"
SEALED_TYPES = (EventType.NOTES_SUBMITTED, EventType.NOTE_CORRECTED)


class WindowClosed(Exception):
    """The note's window is closed (or its cycle is over): it can no longer
    be corrected or withdrawn (the API answers 409)."""


async def _fetch(conn: Conn, query: Any, params: Any) -> list[tuple[Any, ...]]:
    """Rows as tuples whatever the connection's row factory (callers' pools differ)."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchall()


# ---- sealing ----------------------------------------------------------------------------

#: Fields of a note payload that are personal data and stored only sealed:
#: the words, and the named person who wrote them (issue 12).
PERSONAL_FIELDS = ("text", "author_person")


def sealed_field(field: str) -> str:
    """The payload key a personal field is stored under once sealed."""
    return SEALED if field == "text" else f"{field}_sealed"


def _aad(note_id: str, field: str) -> bytes:
    """Associated data: the note id (and the field), so a ciphertext cannot be
    moved to another note or passed off as another field. ``text`` keeps the
    bare note id, as it was sealed before ``author_person`` existed."""
    return note_id.encode() if field == "text" else f"{note_id}:{field}".encode()


def person_key(person: str) -> str:
    """The form a named person is matched by: case- and spacing-insensitive
    (``Anna  Berg`` and ``anna berg`` are one person; an e-mail address is
    matched the same way)."""
    return " ".join(person.split()).casefold()


async def _note_key(
    conn: Conn,
    note_id: str,
    organisation: str,
    *,
    create: bool,
    person: str | None = None,
) -> bytes | None:
    if create:
        await conn.execute(
            "INSERT INTO note_keys (note_id, organisation_id, key, author_person_key)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (note_id) DO UPDATE SET author_person_key ="
            " coalesce(note_keys.author_person_key, EXCLUDED.author_person_key)",
            (
                note_id,
                organisation,
                AESGCM.generate_key(bit_length=256),
                person_key(person) if person else None,
            ),
        )
    rows = await _fetch(conn, "SELECT key FROM note_keys WHERE note_id = %s", (note_id,))
    return bytes(rows[0][0]) if rows else None


def _encrypt(key: bytes, note_id: str, field: str, value: str) -> str:
    nonce = os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, value.encode(), _aad(note_id, field))
    return base64.b64encode(nonce + ct).decode("ascii")


def _decrypt(key: bytes, note_id: str, field: str, blob: str, owner: str) -> bytes:
    """What :func:`_encrypt` sealed; :class:`Unreadable` when it was sealed
    under another key, id or field (``owner`` names the key in the error)."""
    raw = base64.b64decode(blob)
    try:
        return AESGCM(key).decrypt(raw[:12], raw[12:], _aad(note_id, field))
    except InvalidTag as exc:
        raise Unreadable(f"the sealed {field} does not open with {owner}'s key") from exc


async def seal(
    conn: Conn, type_: EventType, stream_id: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """The payload as stored: each personal field (:data:`PERSONAL_FIELDS`)
    replaced by its AES-GCM ciphertext under the note's own key (nonce +
    ciphertext, base64; see :func:`_aad`). Fields that arrive already sealed
    (a submission sealed by the API before it entered Temporal) pass as they are."""
    if type_ not in SEALED_TYPES or not any(payload.get(f) is not None for f in PERSONAL_FIELDS):
        return payload
    note_id = str(payload["note_id"])
    org = str(payload.get("author_organisation") or payload.get("organisation") or "")
    person = payload.get("author_person")
    key = await _note_key(conn, note_id, org, create=True, person=person)
    assert key is not None
    out = {k: v for k, v in payload.items() if k not in PERSONAL_FIELDS}
    for field in PERSONAL_FIELDS:
        if payload.get(field) is not None:
            out[sealed_field(field)] = _encrypt(key, note_id, field, str(payload[field]))
    return out


async def seal_submission(
    conn: Conn, *, note_id: str, organisation: str, text: str, author_person: str | None
) -> dict[str, str]:
    """Seal a note before it leaves the API for the cycle workflow, so that no
    Temporal history (update arguments, activity inputs) ever holds its words
    or its author's name in clear: erasing the note destroys this key and the
    copies in Temporal become as unreadable as the one in the event log.
    Returns the sealed fields (``text_sealed``, ``author_person_sealed``)."""
    key = await _note_key(conn, note_id, organisation, create=True, person=author_person)
    assert key is not None
    out = {SEALED: _encrypt(key, note_id, "text", text)}
    if author_person:
        out[sealed_field("author_person")] = _encrypt(key, note_id, "author_person", author_person)
    return out


async def discard_submission_key(conn: Conn, note_id: str) -> None:
    """The key of a sealed submission that did not become this note (its
    idempotency key named an earlier note): nothing was stored under it."""
    await conn.execute(
        "DELETE FROM note_keys k WHERE k.note_id = %s AND NOT EXISTS"
        " (SELECT 1 FROM notes n WHERE n.id = k.note_id)",
        (note_id,),
    )


class Unreadable(Exception):
    """A sealed field that does not open with its note's key (tampered, or
    sealed for another note): the submission can never succeed."""


async def open_field(conn: Conn, payload: dict[str, Any], field: str = "text") -> str | None:
    """A personal field of a stored (sealed) or in-flight payload; None once
    the note's key was destroyed (erased), or when the field is absent."""
    if payload.get(field) is not None:
        return str(payload[field])
    blob = payload.get(sealed_field(field))
    if not blob:
        return None
    note_id = str(payload["note_id"])
    key = await _note_key(conn, note_id, "", create=False)
    if key is None:
        return None
    return _decrypt(key, note_id, field, blob, f"note {note_id}").decode()


async def seal_value(
    conn: Conn, doc_id: str, organisation: str, field: str, value: Any, *, person: str | None = None
) -> str:
    """Seal any JSON value under the key of ``doc_id``, made on first use: a
    note's id, or the id of something else an organisation wrote
    (:mod:`peerlearn.writings`). Destroying that key shreds every copy."""
    key = await _note_key(conn, doc_id, organisation, create=True, person=person)
    assert key is not None
    return _encrypt(key, doc_id, field, json.dumps(value, ensure_ascii=False))


async def open_value(conn: Conn, doc_id: str, field: str, blob: str) -> Any | None:
    """What :func:`seal_value` sealed; None once the key was destroyed."""
    key = await _note_key(conn, doc_id, "", create=False)
    if key is None:
        return None
    return json.loads(_decrypt(key, doc_id, field, blob, doc_id))


async def note_text(conn: Conn, payload: dict[str, Any]) -> str | None:
    """The note text of a stored (sealed) or in-flight payload; None once the
    note's key was destroyed (erased) or the text was redacted."""
    return await open_field(conn, payload, "text")


eventstore.storage_transform(*SEALED_TYPES)(seal)


# ---- reading a note for a command ---------------------------------------------------------


@dataclass(frozen=True)
class NoteRef:
    id: str
    cycle_id: str
    programme_id: str
    meeting_id: str
    author_organisation: str
    language: str
    visibility: str
    version: int
    window_open: bool


async def load_note(conn: Conn, note_id: str, principal: Principal) -> NoteRef:
    """The note if ``principal`` may change it: managers and admins of its
    grant, and the partner key of its authoring organisation; anyone else gets
    NotFound, the same answer as an unknown note."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT n.id, n.cycle_id, n.programme_id, n.meeting_id, n.author_organisation,"
            " n.language, n.visibility, n.version,"
            " (m.window_closed_at IS NULL AND coalesce(m.state, '') <> 'cancelled'"
            "  AND coalesce(c.status, '') NOT IN ('completed', 'cancelled')) AS window_open"
            " FROM notes n LEFT JOIN meetings m ON m.cycle_id = n.cycle_id AND m.id = n.meeting_id"
            " LEFT JOIN cycles c ON c.id = n.cycle_id WHERE n.id = %s",
            (note_id,),
        )
        row = await cur.fetchone()
    if row is None or not principal.can_see(row["programme_id"]):
        raise NotFound(f"note {note_id!r} not found")
    own = principal.role is Role.partner and principal.organisation == row["author_organisation"]
    if principal.role not in (Role.admin, Role.manager) and not own:
        # another organisation's raw note is not readable to a partner: as unknown
        raise NotFound(f"note {note_id!r} not found")
    return NoteRef(**row)


async def _append(
    conn: Conn, note: NoteRef, type_: EventType, payload: dict[str, Any], key: str
) -> eventstore.AppendResult:
    return await eventstore.append(
        conn,
        stream_id=note.cycle_id,
        type=type_,
        payload={"note_id": note.id, "meeting_id": note.meeting_id, **payload},
        idempotency_key=key,
        occurred_at=datetime.now(UTC),
    )


# ---- commands -----------------------------------------------------------------------------


async def correct(
    conn: Conn,
    note: NoteRef,
    *,
    text: str,
    language: str,
    fmt: str,
    by: str | None,
    visibility: str | None = None,
) -> int:
    """A new version of the note's text (NoteCorrected); its statements are
    removed now and the new text is mined by the note reconciliation (the
    note has no statements and no ThemesUpdated for its new version).
    Returns the new version."""
    if not note.window_open:
        raise WindowClosed(f"the note window of meeting {note.meeting_id!r} is closed")
    version = note.version + 1
    await _append(
        conn,
        note,
        EventType.NOTE_CORRECTED,
        {
            "author_organisation": note.author_organisation,
            "text": text,
            "language": language,
            "format": fmt,
            "version": version,
            "by": by,
        },
        f"note-corrected:{note.id}:{version}",
    )
    await forget_statements(conn, [note.id])
    if visibility is not None and visibility != note.visibility:
        await set_visibility(conn, note, visibility, by=by)
    return version


async def withdraw(conn: Conn, note: NoteRef, *, by: str | None) -> None:
    """The author takes the note back: NoteWithdrawn (the projector removes
    the note from the read model) and its statements leave themes,
    practices and search."""
    if not note.window_open:
        raise WindowClosed(f"the note window of meeting {note.meeting_id!r} is closed")
    await _append(conn, note, EventType.NOTE_WITHDRAWN, {"by": by}, f"note-withdrawn:{note.id}")
    await forget_statements(conn, [note.id])


async def set_visibility(conn: Conn, note: NoteRef, visibility: str, *, by: str | None) -> None:
    """Who may read the note's statements (any time: restricting is always allowed)."""
    if visibility not in VISIBILITIES:
        raise ValueError(f"visibility must be one of {', '.join(VISIBILITIES)}")
    if visibility == "facilitators" and note.visibility != "facilitators":
        # The per-programme labels analysts and partners read were made from
        # this note's statements too: withhold those sharing its words (the
        # next re-mine labels without it, store.programme_statements).
        rows = await _fetch(
            conn,
            "SELECT theme_id, text FROM statements WHERE note_id = %s AND theme_id IS NOT NULL",
            (note.id,),
        )
        await _withhold_labels(
            conn,
            sorted({str(r[0]) for r in rows}),
            [str(r[1]) for r in rows],
            (("theme_labels", "theme_id"),),
        )
    await _append(
        conn,
        note,
        EventType.NOTE_VISIBILITY_CHANGED,
        {"visibility": visibility, "by": by},
        f"note-visibility:{note.id}:{uuid.uuid4().hex}",
    )


# ---- statements, embeddings, themes --------------------------------------------------------


async def forget_statements(conn: Conn, note_ids: list[str]) -> list[str]:
    """Delete the notes' statements and everything derived from their text:
    one-idea practices and glosses that cite them, theme
    representatives quoting them, embeddings no other statement shares, and
    theme labels/keyphrases that contain one of their words (until the next
    re-mine recomputes them). Returns the affected theme ids (for a refresh)."""
    if not note_ids:
        return []
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "DELETE FROM statements WHERE note_id = ANY(%s)"
            " RETURNING id, theme_id, content_hash, text",
            (note_ids,),
        )
        gone = await cur.fetchall()
    if not gone:
        return []
    ids = [r["id"] for r in gone]
    themes = sorted({r["theme_id"] for r in gone if r["theme_id"]})
    hashes = sorted({r["content_hash"] for r in gone})
    await conn.execute(
        "DELETE FROM embeddings e WHERE e.content_hash = ANY(%s) AND NOT EXISTS"
        " (SELECT 1 FROM statements s WHERE s.content_hash = e.content_hash)",
        (hashes,),
    )
    await conn.execute(
        "DELETE FROM theme_practices WHERE statement_ids && %s::text[]"
        " OR EXISTS (SELECT 1 FROM jsonb_each_text(wording_ids) w WHERE w.value = ANY(%s))",
        (ids, ids),
    )
    await conn.execute(
        "DELETE FROM statement_glosses WHERE statement_id = ANY(%s)"
        " OR english_statement_id = ANY(%s)",
        (ids, ids),
    )
    await _scrub_themes(conn, themes, ids, [r["text"] for r in gone])
    return themes


_WORD = re.compile(r"\w{4,}", re.UNICODE)


async def _scrub_themes(conn: Conn, themes: list[str], ids: list[str], texts: list[str]) -> None:
    """Theme texts derived from the removed statements: representatives that
    quote them are dropped; a label, title or keyphrase sharing a word of
    four letters or more with them is withheld (the theme id shows) until
    the next re-mine writes new ones."""
    if not themes:
        return
    await conn.execute(
        "UPDATE themes SET representatives = coalesce((SELECT jsonb_object_agg(k, v) FROM"
        " (SELECT k, coalesce(jsonb_agg(r) FILTER (WHERE NOT (r->>'id' = ANY(%s))), '[]') AS v"
        "  FROM jsonb_each(themes.representatives) AS e(k, arr),"
        "  LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(arr) = 'array' THEN arr"
        "   ELSE '[]'::jsonb END) AS r GROUP BY k) x), '{}'::jsonb)"
        " WHERE id = ANY(%s)",
        (ids, themes),
    )
    await _withhold_labels(conn, themes, texts, (("themes", "id"), ("theme_labels", "theme_id")))


async def _withhold_labels(
    conn: Conn, themes: list[str], texts: list[str], tables: tuple[tuple[str, str], ...]
) -> None:
    """Withhold (until the next re-mine) each label, title and keyphrase list
    of ``themes`` that shares a word of four letters or more with ``texts``."""
    words = sorted({w.lower() for t in texts for w in _WORD.findall(t)})
    if not themes or not words:
        return
    pattern = "(" + "|".join(re.escape(w) for w in words[:2000]) + ")"
    for table, key in tables:
        present = dict(await _text_columns(conn, table))
        for col, empty in (
            ("label", key),
            ("title", key),
            ("keyphrases", "'[]'::jsonb"),
            ("titles", "'{}'::jsonb"),
        ):
            if col not in present:
                continue
            if present[col] == "text" and col == "title" and table == "theme_labels":
                empty = "NULL"
            await conn.execute(
                f"UPDATE {table} SET {col} = {empty} WHERE {key} = ANY(%s)"  # noqa: S608
                f" AND lower({col}::text) ~ %s",
                (themes, pattern),
            )


async def _text_columns(conn: Conn, table: str) -> list[tuple[str, str]]:
    rows = await _fetch(
        conn,
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s"
        " AND data_type IN ('text', 'jsonb')",
        (table,),
    )
    return [(str(c), str(t)) for c, t in rows]


# ---- erasure ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Erasure:
    id: str
    note_ids: list[str]
    theme_ids: list[str]
    #: the other writings erased (peerlearn.writings key names: sa:, ack:, ai:)
    writings: list[str]


async def erase(
    conn: Conn,
    *,
    note_id: str | None = None,
    organisation: str | None = None,
    person: str | None = None,
    requested_by: str | None = None,
    reason: str | None = None,
) -> Erasure:
    """Erase one note, everything an organisation wrote, or everything a
    named person wrote (optionally only within one organisation): destroy
    the notes' keys (the sealed texts in the log and in Temporal histories
    become unreadable), append a NoteErased tombstone per note (the projector
    deletes its read-model row), delete its statements, embeddings, originals
    and report copies. Streams stay gap-free: no event is changed or deleted."""
    if note_id is not None and (organisation is not None or person is not None):
        raise ValueError("erase one note, one organisation or one person")
    if note_id is None and organisation is None and person is None:
        raise ValueError("erase one note, one organisation or one person")
    rows: list[tuple[Any, ...]]
    if note_id is not None:
        rows = await _fetch(
            conn,
            "SELECT id, cycle_id, meeting_id, author_organisation FROM notes WHERE id = %s"
            " UNION SELECT note_id, NULL, NULL, organisation_id FROM note_keys WHERE note_id = %s",
            (note_id, note_id),
        )
    elif person is not None:
        names = await person_identities(conn, person, organisation)
        rows = await _fetch(
            conn,
            "SELECT n.id, n.cycle_id, n.meeting_id, n.author_organisation FROM notes n"
            " JOIN note_keys k ON k.note_id = n.id WHERE k.author_person_key = ANY(%s)"
            " AND (%s::text IS NULL OR n.author_organisation = %s)"
            " UNION SELECT note_id, NULL, NULL, organisation_id FROM note_keys"
            " WHERE author_person_key = ANY(%s) AND (%s::text IS NULL OR organisation_id = %s)",
            (names, organisation, organisation, names, organisation, organisation),
        )
    else:
        rows = await _fetch(
            conn,
            "SELECT id, cycle_id, meeting_id, author_organisation FROM notes"
            " WHERE author_organisation = %s"
            " UNION SELECT note_id, NULL, NULL, organisation_id FROM note_keys"
            " WHERE organisation_id = %s",
            (organisation, organisation),
        )
    found: dict[str, tuple[str | None, str | None, str]] = {}
    for nid, cid, mid, org in rows:
        if nid not in found or found[nid][0] is None:
            found[nid] = (cid, mid, org)
    # notes only the log knows (withdrawn, or never projected): find their stream
    by_person = list(found) if person is not None else []
    rows = await _fetch(
        conn,
        "SELECT DISTINCT ON (payload->>'note_id') payload->>'note_id', stream_id,"
        " payload->>'meeting_id', payload->>'author_organisation' FROM events"
        " WHERE type = %s AND (payload->>'note_id' = %s OR payload->>'note_id' = ANY(%s)"
        " OR (%s::text IS NULL AND payload->>'author_organisation' = %s))",
        (EventType.NOTES_SUBMITTED.value, note_id, by_person, person, organisation),
    )
    for nid, cid, mid, org in rows:
        if nid not in found or found[nid][0] is None:
            found[nid] = (cid, mid, org)
    if note_id is not None and not found:
        raise NotFound(f"note {note_id!r} not found")
    if person is not None and not found:
        raise NotFound("no note of that person is stored")
    erasure_id = "E" + uuid.uuid4().hex[:16]
    # what the organisation or person wrote besides notes (peerlearn.writings)
    from peerlearn import writings  # (it imports this module)

    docs = sorted(i for i in found if writings.kind_of(i))
    note_ids = sorted(i for i in found if i not in docs)
    # A note written before its texts were sealed (migration 0015) is sealed
    # now, so that destroying its key below shreds those events too.
    from peerlearn.legacy_seal import seal_legacy_events  # (it imports this module)

    await seal_legacy_events(conn, note_ids=note_ids)
    await conn.execute("DELETE FROM note_keys WHERE note_id = ANY(%s)", (note_ids + docs,))
    for nid in note_ids:
        cid, mid, org = found[nid]
        if cid is None:
            continue
        await eventstore.append(
            conn,
            stream_id=cid,
            type=EventType.NOTE_ERASED,
            payload={"note_id": nid, "meeting_id": mid, "organisation": org,
                     "erasure_id": erasure_id},
            idempotency_key=f"note-erased:{nid}",
            occurred_at=datetime.now(UTC),
        )  # fmt: skip
    # Events stay as written (the log is append-only, enforced by a trigger
    # that allows only the sealing of a clear text, migration 0019): every
    # NotesSubmitted/NoteCorrected is sealed, so deleting the keys above is
    # what erases the text from the log.
    cycles = sorted({c for c, _, _ in found.values() if c} | {d.split(":")[1] for d in docs})
    mined = await writings.erase_copies(conn, note_ids=note_ids, docs=docs, cycles=cycles)
    themes = await forget_statements(conn, note_ids + mined)
    # idempotency claims keep digests of the text and the author's name
    await conn.execute(
        "DELETE FROM note_claims c WHERE c.note_id = ANY(%s) OR c.organisation_id = %s"
        " OR EXISTS (SELECT 1 FROM notes n WHERE n.id = ANY(%s)"
        " AND n.cycle_id = c.cycle_id AND n.client_key = c.client_key)",
        (note_ids, organisation if note_id is None and person is None else None, note_ids),
    )
    await conn.execute("DELETE FROM notes WHERE id = ANY(%s)", (note_ids,))
    rows = await _fetch(
        conn, "DELETE FROM note_originals WHERE note_id = ANY(%s) RETURNING sha256", (note_ids,)
    )
    shas = sorted({r[0] for r in rows})
    await conn.execute(
        "DELETE FROM document_blobs b WHERE b.sha256 = ANY(%s) AND NOT EXISTS"
        " (SELECT 1 FROM note_originals o WHERE o.sha256 = b.sha256)",
        (shas,),
    )
    # report copies quoting the notes: the cycle's wrap-up report is compiled
    # from statements, so a stored copy is dropped and re-rendered on demand
    await conn.execute("DELETE FROM reports WHERE cycle_id = ANY(%s)", (cycles,))
    await conn.execute(
        "INSERT INTO erasures (id, target_kind, target, note_ids, requested_by, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (
            erasure_id,
            "note" if note_id else "person" if person else "organisation",
            note_id or (person_digest(person) if person else organisation),
            note_ids,
            requested_by,
            reason,
        ),
    )
    return Erasure(erasure_id, note_ids, themes, docs)


def person_digest(person: str) -> str:
    """How an erasure record names the person it erased: not by name."""
    return "person:" + hashlib.sha256(person_key(person).encode()).hexdigest()[:16]


async def person_identities(conn: Conn, person: str, organisation: str | None) -> list[str]:
    """The matching forms a named person is known by: what was asked for,
    plus the other half of every programme contact (name and e-mail) it
    matches, so erasing ``anna.berg@vaxa.se`` also finds notes signed
    ``Anna Berg`` by a contact of that organisation."""
    want = person_key(person)
    names = {want}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT partners FROM programmes")
        for row in await cur.fetchall():
            for partner in row["partners"] or []:
                if organisation is not None and partner.get("id") != organisation:
                    continue
                for c in partner.get("contacts") or []:
                    if not isinstance(c, dict):
                        continue
                    forms = {person_key(str(c.get(k) or "")) for k in ("name", "email")}
                    if want in forms:
                        names |= {f for f in forms if f}
    return sorted(names)


# ---- right to a copy ----------------------------------------------------------------------


async def export_organisation(
    conn: Conn, organisation: str, *, person: str | None = None
) -> dict[str, Any]:
    """Everything ``organisation`` wrote that is still stored (or, with
    ``person``, what that person of it wrote): its notes (with visibility,
    version, author and original file names), their statements and the
    themes they were placed in, its self-assessments, replies to feedback and
    action items (:mod:`peerlearn.writings`), and its erasures."""
    from peerlearn import writings  # (it imports this module)

    person_filter = ""
    params: list[Any] = [organisation]
    forms: list[str] | None = None
    if person is not None:
        person_filter = (
            " AND n.id IN (SELECT note_id FROM note_keys WHERE author_person_key = ANY(%s))"
        )
        forms = await person_identities(conn, person, organisation)
        params.append(forms)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT n.id, n.programme_id, n.cycle_id, n.meeting_id, n.language, n.format,"
            " n.text, n.visibility, n.version, n.submitted_at, n.corrected_at, n.submitted_by,"
            " n.author_person, o.filename AS original_filename, o.sha256 AS original_sha256"
            " FROM notes n LEFT JOIN note_originals o ON o.note_id = n.id"
            " WHERE n.author_organisation = %s" + person_filter + " ORDER BY n.submitted_at, n.id",
            params,
        )
        notes = await cur.fetchall()
        note_ids = [n["id"] for n in notes]
        await cur.execute(
            "SELECT id, note_id, position, text, language, kind, heading, theme_id, source_date"
            " FROM statements WHERE organisation_id = %s AND (%s OR note_id = ANY(%s))"
            " ORDER BY note_id, position",
            (organisation, person is None, note_ids),
        )
        statements = await cur.fetchall()
        await cur.execute(
            "SELECT id, target_kind, target, note_ids, created_at FROM erasures"
            " WHERE target = %s OR note_ids && %s ORDER BY created_at",
            (
                person_digest(person) if person is not None else organisation,
                note_ids or [""],
            ),
        )
        erasures = await cur.fetchall()
    return json.loads(
        json.dumps(
            {
                "organisation": organisation,
                **({"person": person} if person is not None else {}),
                "exported_at": datetime.now(UTC),
                "notes": notes,
                "statements": statements,
                **await writings.export(conn, organisation, forms),
                "erasures": erasures,
            },
            default=str,
        )
    )
