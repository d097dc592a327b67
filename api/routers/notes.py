"""/v1/cycles/{cycle_id}/.../notes: submit meeting notes (JSON or a plain
text / Markdown body) and list them.

A 2xx answer means the note is stored exactly once: the workflow's update
persists the NotesSubmitted event before it answers, and the same
idempotency key (``Idempotency-Key`` header or ``client_key``) returns the
same note id (201 the first time, 200 after)."""

from __future__ import annotations

import hashlib
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from api import cycle_ops, uploads
from api.auth import CurrentPrincipal, Principal, Role, require
from api.deps import OptionalTemporal, Pool, SettingsDep, TemporalClient
from api.limits import check_note_text
from api.problems import Problem
from api.routers.programmes import programme_row
from api.schemas_cycles import NoteCreate, NotePage, NoteSubmitted
from peerlearn import privacy
from peerlearn.readside.filters import facilitator
from workflows.cycle import PeerLearningCycle
from workflows.types import SubmitNoteInput, SubmitNoteOutput

router = APIRouter(prefix="/v1/cycles/{cycle_id}", tags=["notes"])

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": NoteCreate.model_json_schema(ref_template="#/components/schemas/{model}")
            },
            "text/markdown": {
                "schema": {"type": "string"},
                "example": "## Visit to Växa\n- Matchmaking works\n- Action: share the template",
            },
            "text/plain": {"schema": {"type": "string"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "author_organisation"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": ".docx, .odt, .pdf (text layer), .md, .txt, .html, .eml",
                        },
                        "author_organisation": {"type": "string"},
                        "language": {"type": "string"},
                        "client_key": {"type": "string"},
                        "visibility": {
                            "type": "string",
                            "enum": ["facilitators", "programme", "public"],
                        },
                    },
                }
            },
        },
    }
}


@router.post(
    "/meetings/{meeting_id}/notes",
    status_code=status.HTTP_201_CREATED,
    response_model=NoteSubmitted,
    openapi_extra=_BODY_DOC,
    responses={
        200: {"description": "Same idempotency key seen before: the stored note's id"},
        404: {"description": "Unknown cycle or meeting"},
        409: {"description": "Refused: meeting not held yet, cancelled, or cycle closed"},
        415: {"description": "Body is neither JSON nor text/markdown/plain"},
    },
)
async def submit_notes(
    cycle_id: str,
    meeting_id: str,
    request: Request,
    response: Response,
    pool: Pool,
    client: TemporalClient,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    author_organisation: Annotated[
        str | None, Query(description="For text bodies (or X-Author-Organisation)")
    ] = None,
    language: Annotated[
        str | None, Query(description="For text bodies (or Content-Language)")
    ] = None,
    author_person: Annotated[
        str | None,
        Query(max_length=200, description="For text bodies (or X-Author-Person): who wrote it"),
    ] = None,
    principal: Principal = require(Role.manager, Role.partner),
) -> NoteSubmitted:
    """Submit one organisation's notes of a held meeting; mined as they arrive."""
    row = await cycle_ops.visible_cycle(pool, client, cycle_id, principal)
    upload: uploads.Upload | None = None
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if ctype in ("application/json", ""):
        try:
            note = NoteCreate.model_validate_json(raw or b"{}")
        except ValidationError as exc:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise Problem(422, detail) from exc
    elif ctype in ("text/markdown", "text/plain"):
        org = author_organisation or request.headers.get("x-author-organisation")
        lang = language or request.headers.get("content-language")
        if not org or not lang:
            raise Problem(
                422, "text bodies need author_organisation and language (query or headers)"
            )
        try:
            note = NoteCreate(
                author_organisation=org,
                language=lang,
                text=raw.decode("utf-8"),
                format="markdown" if ctype == "text/markdown" else "text",
                author_person=author_person or request.headers.get("x-author-person") or None,
            )
        except (UnicodeDecodeError, ValidationError) as exc:
            raise Problem(422, f"invalid note body: {exc}") from exc
    elif ctype == "multipart/form-data":  # a document: same path as JSON from here on
        prog = await programme_row(pool, row["programme_id"])
        langs = list(prog["languages"]) if prog else []
        note, upload = await uploads.note_from_upload(request, settings, langs)
    else:
        raise Problem(
            415,
            f"unsupported content type {ctype!r}; use JSON, text/markdown, text/plain"
            " or multipart/form-data with a file",
        )
    check_note_text(note.text, settings)
    programme = await programme_row(pool, row["programme_id"])
    partners = [p["id"] for p in programme["partners"]] if programme else None
    principal.check_organisation(note.author_organisation, partners)
    if principal.person is not None:  # a person's own key signs as that person
        if note.author_person is None:
            note = note.model_copy(update={"author_person": principal.person})
        elif privacy.person_key(note.author_person) != privacy.person_key(principal.person):
            raise Problem(
                422,
                f"this key belongs to {principal.person!r} and signs notes as them;"
                " leave author_person out or use a key of the person who wrote it",
            )
    if partners is not None and note.author_organisation not in partners:  # any role
        raise Problem(
            422,
            f"author_organisation {note.author_organisation!r} is not a partner of"
            f" programme {row['programme_id']!r}; notes are written by its partners",
        )
    key = idempotency_key or note.client_key or uuid.uuid4().hex
    proposed = str(uuid.uuid4())
    # One transaction: claim the key (409 writes nothing), then seal the text
    # and the author's name here, before Temporal sees them, so no workflow
    # history holds either in clear (issue 12).
    async with pool.connection() as conn, conn.transaction():
        await _claim_key(conn, cycle_id, meeting_id, key, note, proposed)
        sealed = await privacy.seal_submission(
            conn,
            note_id=proposed,
            organisation=note.author_organisation,
            text=note.text,
            author_person=note.author_person,
        )
    inp = SubmitNoteInput(
        meeting_id=meeting_id,
        client_key=key,
        author_organisation=note.author_organisation,
        language=note.language,
        format=note.format,
        submitted_by=principal.key_id,
        note_id=proposed,
        text_sealed=sealed[privacy.SEALED],
        author_person_sealed=sealed.get(privacy.sealed_field("author_person")),
    )
    try:
        out = await _submit(client, row, inp)
    except Problem as exc:
        if exc.status < 500:  # refused for sure: nothing was stored under this seal
            async with pool.connection() as conn:
                await privacy.discard_submission_key(conn, proposed)
            await _release_claim(pool, cycle_id, key, proposed)
        raise
    if out.note_id != proposed:  # the key named an earlier note: this seal is unused
        async with pool.connection() as conn:
            await privacy.discard_submission_key(conn, proposed)
    if upload is not None:
        await uploads.keep_original(pool, upload, out.note_id, cycle_id)
    if note.visibility not in (None, "programme") and not out.duplicate:  # issue 12
        async with pool.connection() as conn, conn.transaction():
            ref = await privacy.load_note(conn, out.note_id, principal)
            await privacy.set_visibility(conn, ref, note.visibility, by=principal.key_id)
    if out.duplicate:
        response.status_code = status.HTTP_200_OK
    return NoteSubmitted(note_id=out.note_id, duplicate=out.duplicate)


async def _submit(client: Any, row: Any, inp: SubmitNoteInput) -> SubmitNoteOutput:
    out: SubmitNoteOutput = await cycle_ops.run_update(
        client, row, PeerLearningCycle.submit_notes, inp
    )
    return out


def _claim_fields(meeting_id: str, note: NoteCreate | dict[str, Any]) -> dict[str, str | None]:
    """What an idempotency key is bound to: the note's coordinates in clear,
    its text and author only as sha256 digests (a claim outlives no erasure,
    but it should not be a second copy of the words meanwhile)."""
    get = note.get if isinstance(note, dict) else lambda k: getattr(note, k)

    def digest(v: object) -> str | None:
        return None if v is None else hashlib.sha256(str(v).encode()).hexdigest()

    return {
        "meeting_id": meeting_id,
        "author_organisation": get("author_organisation"),
        "language": get("language"),
        "format": get("format"),
        "text": digest(get("text")),
        "author_person": digest(get("author_person")),
    }


async def _claim_key(
    conn: AsyncConnection[Any],
    cycle_id: str,
    meeting_id: str,
    key: str,
    note: NoteCreate,
    proposed: str,
) -> None:
    """An idempotency key names one note: the same key again with the same
    note is a duplicate (200, the stored id), with anything different a 409,
    as payment APIs answer, instead of silently returning the other note.

    The first request claims the key (``note_claims``, in the caller's
    transaction) before the note goes to the workflow, inside one statement,
    so of two simultaneous requests with one key and different notes exactly
    one passes. A note stored before claims existed is compared as it is stored."""
    sent = _claim_fields(meeting_id, note)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "INSERT INTO note_claims (cycle_id, client_key, fields, note_id, organisation_id)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (cycle_id, key, Jsonb(sent), proposed, note.author_organisation),
        )
        if await cur.fetchone() is None:
            await cur.execute(
                "SELECT fields FROM note_claims WHERE cycle_id = %s AND client_key = %s",
                (cycle_id, key),
            )
            claim = await cur.fetchone()
            stored = claim["fields"] if claim else None
        else:
            await cur.execute(
                "SELECT meeting_id, author_organisation, language, text, format, author_person"
                " FROM notes WHERE cycle_id = %s AND client_key = %s",
                (cycle_id, key),
            )
            legacy = await cur.fetchone()
            stored = _claim_fields(legacy["meeting_id"], legacy) if legacy else None
    differs = [k for k, v in sent.items() if stored is not None and stored.get(k) != v]
    if differs:  # (raised inside the caller's transaction: a fresh claim is not kept)
        raise Problem(
            409,
            f"Idempotency-Key {key!r} was already used for a different note"
            f" ({', '.join(differs)} differ); use a new key for a new note",
        )


async def _release_claim(pool: Pool, cycle_id: str, key: str, proposed: str) -> None:
    """The submission was refused: its claim goes (if it was this request's
    and no note holds the key), so the key can carry a corrected note."""
    async with pool.connection() as conn:
        await conn.execute(
            "DELETE FROM note_claims c WHERE c.cycle_id = %s AND c.client_key = %s"
            " AND c.note_id = %s AND NOT EXISTS (SELECT 1 FROM notes n"
            " WHERE n.cycle_id = c.cycle_id AND n.client_key = c.client_key)",
            (cycle_id, key, proposed),
        )


@router.get("/notes", response_model=NotePage, responses={404: {"description": "Unknown cycle"}})
async def list_notes(
    cycle_id: str,
    temporal: OptionalTemporal,
    pool: Pool,
    principal: CurrentPrincipal,
    meeting_id: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """The cycle's notes in submission order (optionally of one meeting)."""
    await cycle_ops.visible_cycle(pool, temporal, cycle_id, principal)
    # late: the note came after its meeting's note window closed
    sql = (
        "SELECT n.*, (m.window_closed_at IS NOT NULL AND n.submitted_at > m.window_closed_at)"
        " AS late FROM notes n JOIN meetings m ON m.cycle_id = n.cycle_id AND m.id = n.meeting_id"
        " WHERE n.cycle_id = %s"
    )
    params: list[Any] = [cycle_id]
    if principal.notes_organisation is not None:  # partners: their own raw notes only
        sql += " AND n.author_organisation = %s"
        params.append(principal.notes_organisation)
    elif not facilitator(principal):  # analysts: no facilitators-only note (issue 12)
        sql += " AND n.visibility <> 'facilitators'"
    if meeting_id:
        sql += " AND n.meeting_id = %s"
        params.append(meeting_id)
    async with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql + " ORDER BY n.submitted_at, n.id", params)
        items = await cur.fetchall()
    if principal.notes_organisation is None and not facilitator(principal):
        for item in items:  # who wrote it is the author's and the facilitators' business
            item["author_person"] = None
    return {"items": items}
