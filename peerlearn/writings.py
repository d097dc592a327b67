"""Words kept outside notes, sealed like notes so that an erasure reaches them.

A host's self-assessment answers, its reply to the peers' feedback, action
items and their progress notes are an organisation's own words; a wrap-up
report and an action item's recommendation copy the words of notes. Each
sits in an append-only event, so each is stored sealed (AES-256-GCM, see
:func:`peerlearn.privacy.seal_value`) under a key that erasure destroys:

=====================================  ========================  ===================
event field                            key (``note_keys`` row)   destroyed when
=====================================  ========================  ===================
SelfAssessmentSubmitted ``answers``    ``sa:{cycle}:{meeting}``  the host, or the
                                                                 person who sent it,
                                                                 is erased
FeedbackAcknowledged ``note``          ``ack:{cycle}:{meeting}`` same
ActionItemAdded ``what``,              ``ai:{cycle}:{item}``     the owner (or the
ActionItemUpdated ``note``                                       writer) is erased
ActionItemAdded ``recommendation``     the quoted note's key     that note is erased
WrapUpPublished ``report``,            ``report:{cycle}``        any note of the
``markdown``                                                     cycle is erased
WrapUpPublished ``action_items[]``     the source note's key     that note is erased
=====================================  ========================  ===================

The writing's key rows carry the writer's organisation and, when the API key
that wrote it names a person, that person's matching form: erasing an
organisation or a person finds them like notes. Projectors read a sealed
field through :func:`opened` (a clear one, as projected at append time, is
taken as it is); a field whose key is gone reads as None and its row is not
rebuilt. :func:`erase_copies` removes what the read models hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row

from peerlearn import eventstore, privacy
from peerlearn.events import EventType

Conn = psycopg.AsyncConnection[Any]

SELF_ASSESSMENT, ACKNOWLEDGEMENT, ACTION_ITEM, REPORT = "sa", "ack", "ai", "report"
#: The kinds of writing an organisation (or a person of it) owns, erased with it.
OWNED = (SELF_ASSESSMENT, ACKNOWLEDGEMENT, ACTION_ITEM)


def doc_id(kind: str, cycle_id: str, part: str = "") -> str:
    """The key name of one writing. Ids never contain ':' (the API's id rule)."""
    return f"{kind}:{cycle_id}:{part}" if part else f"{kind}:{cycle_id}"


def kind_of(doc: str) -> str | None:
    """``sa``, ``ack``, ``ai`` or ``report`` for a writing's key name; None for a note."""
    kind = doc.split(":", 1)[0]
    return kind if ":" in doc and kind in (*OWNED, REPORT) else None


def note_key_of(note_id: str) -> str:
    """The key a mined note's words are sealed under: the note's own, or for
    the free text of a self-assessment (``sa:{cycle}:{meeting}:{version}``)
    the self-assessment's."""
    if note_id.startswith(SELF_ASSESSMENT + ":") and note_id.count(":") == 3:
        return note_id.rsplit(":", 1)[0]
    return note_id


def _sealed(field: str) -> str:
    return f"{field}_sealed"


async def _person_of_key(conn: Conn, key_id: Any) -> str | None:
    if not key_id:
        return None
    person = await _one(conn, "SELECT person FROM api_keys WHERE id = %s", (str(key_id),))
    return str(person) if person else None


async def _one(conn: Conn, query: str, params: Sequence[Any]) -> Any | None:
    """The first column of the first row, whatever the pool's row factory."""
    async with conn.cursor(row_factory=tuple_row) as cur:
        await cur.execute(query, params)
        row = await cur.fetchone()
    return row[0] if row else None


async def _seal_fields(
    conn: Conn,
    payload: dict[str, Any],
    doc: str,
    organisation: str,
    fields: Sequence[str],
    person: str | None = None,
) -> dict[str, Any]:
    out = dict(payload)
    for field in fields:
        if out.get(field) is not None:
            out[_sealed(field)] = await privacy.seal_value(
                conn, doc, organisation, field, out.pop(field), person=person
            )
    return out


async def _seal_quote(conn: Conn, rec: dict[str, Any], field: str) -> dict[str, Any]:
    """A recommendation snapshot with its text sealed under the quoted note's key."""
    if rec.get("text") is None:
        return rec
    note = rec.get("note_id") or await _one(
        conn, "SELECT note_id FROM statements WHERE id = %s", (rec.get("statement_id"),)
    )
    if note is None:  # not a mined statement (never from the API): keep no words at all
        return {k: v for k, v in rec.items() if k != "text"}
    out = {k: v for k, v in rec.items() if k != "text"}
    out["note_id"] = str(note)
    # the note's key exists (its text is sealed under it); the organisation
    # only matters for a note older than sealing, whose key is made here
    out["text_sealed"] = await privacy.seal_value(
        conn, note_key_of(str(note)), str(rec.get("organisation") or ""), field, rec["text"]
    )
    return out


async def seal(
    conn: Conn, type_: EventType, stream_id: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """The storage transform of every event type in the module docstring's table."""
    p = payload
    if type_ is EventType.SELF_ASSESSMENT_SUBMITTED:
        person = await _person_of_key(conn, p.get("submitted_by"))
        doc = doc_id(SELF_ASSESSMENT, stream_id, p["meeting_id"])
        return await _seal_fields(conn, p, doc, str(p["host"]), ("answers",), person)
    if type_ is EventType.FEEDBACK_ACKNOWLEDGED:
        host = await _one(
            conn,
            "SELECT host FROM meetings WHERE cycle_id = %s AND id = %s",
            (stream_id, p["meeting_id"]),
        )
        person = await _person_of_key(conn, p.get("by"))
        doc = doc_id(ACKNOWLEDGEMENT, stream_id, p["meeting_id"])
        return await _seal_fields(conn, p, doc, str(host or ""), ("note",), person)
    if type_ in (EventType.ACTION_ITEM_ADDED, EventType.ACTION_ITEM_UPDATED):
        owner = p.get("owner") or await _one(
            conn,
            "SELECT owner FROM action_items WHERE cycle_id = %s AND id = %s",
            (stream_id, p["item_id"]),
        )
        person = await _person_of_key(conn, p.get("by"))
        doc = doc_id(ACTION_ITEM, stream_id, p["item_id"])
        out = await _seal_fields(conn, p, doc, str(owner or ""), ("what", "note"), person)
        if isinstance(out.get("recommendation"), dict):
            field = f"recommendation:{p['item_id']}"
            out["recommendation"] = await _seal_quote(conn, out["recommendation"], field)
        return out
    if type_ is EventType.WRAP_UP_PUBLISHED:
        out = await _seal_fields(conn, p, doc_id(REPORT, stream_id), "", ("report", "markdown"))
        items = []
        for item in p.get("action_items") or []:
            note, what = item.get("source_note_id"), item.get("what")
            if note and what is not None:  # a line of a note: that note's words
                item = {k: v for k, v in item.items() if k != "what"}
                item["what_sealed"] = await privacy.seal_value(
                    conn, note_key_of(str(note)), "", f"action:{item['id']}", what
                )
            items.append(item)
        out["action_items"] = items
        return out
    return payload


#: The payload keys that carry words, per event type sealed here.
WORDS: dict[EventType, tuple[str, ...]] = {
    EventType.SELF_ASSESSMENT_SUBMITTED: ("answers",),
    EventType.FEEDBACK_ACKNOWLEDGED: ("note",),
    EventType.ACTION_ITEM_ADDED: ("what", "recommendation"),
    EventType.ACTION_ITEM_UPDATED: ("note",),
    EventType.WRAP_UP_PUBLISHED: ("report", "markdown", "action_items"),
}
eventstore.storage_transform(*WORDS)(seal)


def without_words(type_: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A payload fit to be copied elsewhere (an outbox row, a webhook): with
    the fields sealed in the log left out, which would otherwise outlive an
    erasure there (readers fetch them through the API, which honours it)."""
    words = next((w for t, w in WORDS.items() if t.value == type_), ())
    return {
        k: v
        for k, v in payload.items()
        if k not in words and k.removesuffix("_sealed") not in words
    }


# ---- reading (projectors) -------------------------------------------------------------------


async def opened(
    conn: Conn, stream_id: str, type_: EventType, payload: dict[str, Any]
) -> dict[str, Any]:
    """The payload as it was given: sealed fields opened, or None where the
    key was destroyed (the field was erased). Clear payloads pass unchanged."""
    p = dict(payload)
    if type_ is EventType.SELF_ASSESSMENT_SUBMITTED:
        docs = {"answers": doc_id(SELF_ASSESSMENT, stream_id, p["meeting_id"])}
    elif type_ is EventType.FEEDBACK_ACKNOWLEDGED:
        docs = {"note": doc_id(ACKNOWLEDGEMENT, stream_id, p["meeting_id"])}
    elif type_ in (EventType.ACTION_ITEM_ADDED, EventType.ACTION_ITEM_UPDATED):
        own = doc_id(ACTION_ITEM, stream_id, p["item_id"])
        docs = {"what": own, "note": own}
        rec = p.get("recommendation")
        if isinstance(rec, dict) and "text_sealed" in rec:
            text = await privacy.open_value(
                conn,
                note_key_of(str(rec["note_id"])),
                f"recommendation:{p['item_id']}",
                rec["text_sealed"],
            )
            p["recommendation"] = {
                **{k: v for k, v in rec.items() if k != "text_sealed"},
                "text": text,
            }
    elif type_ is EventType.WRAP_UP_PUBLISHED:
        docs = {"report": doc_id(REPORT, stream_id), "markdown": doc_id(REPORT, stream_id)}
        items = []
        for item in p.get("action_items") or []:
            if "what_sealed" in item:
                what = await privacy.open_value(
                    conn,
                    note_key_of(str(item["source_note_id"])),
                    f"action:{item['id']}",
                    item["what_sealed"],
                )
                item = {**{k: v for k, v in item.items() if k != "what_sealed"}, "what": what}
            items.append(item)
        p["action_items"] = items
    else:
        return p
    for field, doc in docs.items():
        blob = p.pop(_sealed(field), None)
        if field not in p and blob is not None:
            p[field] = await privacy.open_value(conn, doc, field, blob)
    return p


# ---- erasure and the right to a copy --------------------------------------------------------


async def erase_copies(
    conn: Conn, *, note_ids: Sequence[str], docs: Sequence[str], cycles: Sequence[str]
) -> list[str]:
    """Delete what the read models copied from erased notes and writings,
    and the keys of the cycles' stored reports (so that no projection rebuild
    brings a report quoting them back). Returns the mined statements' note
    ids the writings left (a self-assessment's free text), for the caller to
    forget like notes' statements."""
    notes = list(note_ids)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("SELECT id FROM statements WHERE note_id = ANY(%s)", (notes,))
        statements = [r["id"] for r in await cur.fetchall()]
        # feedback compiled from the notes' statements, and snapshots quoting them
        await cur.execute(
            "UPDATE feedback_summaries SET items = (SELECT coalesce(jsonb_agg(i ORDER BY n), '[]')"
            " FROM jsonb_array_elements(items) WITH ORDINALITY AS x(i, n)"
            " WHERE NOT (i->>'statement_id' = ANY(%s))) WHERE cycle_id = ANY(%s)",
            (statements, list(cycles)),
        )
        await cur.execute(
            "UPDATE action_items SET recommendation = recommendation - 'text'"
            ' || \'{"text": null, "erased": true}\'::jsonb'
            " WHERE recommendation->>'statement_id' = ANY(%s)"
            " OR recommendation->>'note_id' = ANY(%s)",
            (statements, notes),
        )
        # wrap-up items lifted from a note's "Action: ..." lines
        await cur.execute(
            "SELECT cycle_id, id FROM action_items WHERE cycle_id = ANY(%s)", (list(cycles),)
        )
        erased = set(notes)
        lifted = [
            (r["cycle_id"], r["id"])
            for r in await cur.fetchall()
            if str(r["id"]).startswith("note-") and str(r["id"])[5:].rsplit("-", 1)[0] in erased
        ]
        mined: list[str] = []
        for doc in docs:
            kind, cycle, part = (doc.split(":") + ["", ""])[:3]
            if kind == SELF_ASSESSMENT:
                await cur.execute(
                    "DELETE FROM self_assessments WHERE cycle_id = %s AND meeting_id = %s",
                    (cycle, part),
                )
                await cur.execute(
                    "SELECT DISTINCT note_id FROM statements WHERE starts_with(note_id, %s)",
                    (doc + ":",),
                )
                mined += [r["note_id"] for r in await cur.fetchall()]
            elif kind == ACKNOWLEDGEMENT:
                await cur.execute(
                    "UPDATE feedback_acknowledgements SET note = NULL"
                    " WHERE cycle_id = %s AND meeting_id = %s",
                    (cycle, part),
                )
            elif kind == ACTION_ITEM:
                lifted.append((cycle, part))
        for cycle, item in lifted:
            await cur.execute(
                "DELETE FROM action_items WHERE cycle_id = %s AND id = %s", (cycle, item)
            )
        await cur.execute(
            "DELETE FROM note_keys WHERE note_id = ANY(%s)",
            ([doc_id(REPORT, c) for c in cycles] + list(docs),),
        )
    return mined


#: What the export lists per writing: table, kind, columns, the key's last
#: part, an extra condition and the order.
_EXPORTED = (
    ("self_assessments", SELF_ASSESSMENT, "cycle_id, meeting_id, language, answers, submitted_at",
     "meeting_id", "", "submitted_at"),
    ("feedback_acknowledgements", ACKNOWLEDGEMENT, "cycle_id, meeting_id, note, acknowledged_at",
     "meeting_id", "w.note IS NOT NULL AND ", "acknowledged_at"),
    ("action_items", ACTION_ITEM,
     "cycle_id, id, what, status, due_at, meeting_id, progress, created_at",
     "id", "", "created_at, id"),
)  # fmt: skip


async def export(conn: Conn, organisation: str, persons: Sequence[str] | None) -> dict[str, Any]:
    """The writings of ``organisation`` still stored (with ``persons``: only
    those written under a key naming one of those matching forms)."""

    # the writing's key row (kind:cycle:part) says who wrote it
    mine = (
        "EXISTS (SELECT 1 FROM note_keys k WHERE k.note_id = %s || ':' || {cycle} || ':'"
        " || {part} AND k.organisation_id = %s"
        " AND (%s::text[] IS NULL OR k.author_person_key = ANY(%s::text[])))"
    )
    forms = list(persons) if persons is not None else None
    out: dict[str, Any] = {}
    async with conn.cursor(row_factory=dict_row) as cur:
        for name, kind, columns, part, also, order in _EXPORTED:
            await cur.execute(
                f"SELECT {columns} FROM {name} w WHERE {also}"  # noqa: S608 (constants)
                + mine.format(cycle="w.cycle_id", part=f"w.{part}")
                + f" ORDER BY {order}",
                [kind, organisation, forms, forms],
            )
            out[name] = await cur.fetchall()
    return out
