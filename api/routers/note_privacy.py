"""Partners control their notes (issue 12): correct (PUT) or withdraw
(DELETE) a note while its window is open, change its visibility (PATCH), and
for admins erasure (POST /v1/erasures) and an organisation's copy of
everything it wrote (GET /v1/organisations/{org}/export).

HTTP only: the rules (who may, window open, sealing, what erasure deletes)
live in :mod:`peerlearn.privacy`. A correction goes through the event store
on the note's cycle stream, not the cycle workflow: the workflow decides when
a window opens and closes and projects that into ``meetings``, and the
window check reads that read model inside the appending transaction.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, Field, ValidationError, model_validator

from api import uploads
from api.auth import CurrentPrincipal, Principal, Role, require
from api.deps import OptionalTemporal, Pool, SettingsDep
from api.limits import check_note_text
from api.mining import remine_themes
from api.problems import Problem
from api.schemas_cycles import NoteCreate
from peerlearn import documents, privacy
from peerlearn.access import NotFound
from peerlearn.mining import store

router = APIRouter(tags=["notes"])

Visibility = Literal["facilitators", "programme", "public"]


class NoteCorrection(BaseModel):
    """A new version of a note (JSON body of PUT /v1/notes/{id})."""

    text: str = Field(min_length=1)
    language: str | None = Field(default=None, min_length=2, max_length=16)
    format: Literal["text", "markdown"] = "text"
    visibility: Visibility | None = None


class NoteVisibility(BaseModel):
    visibility: Visibility


class NoteChanged(BaseModel):
    note_id: str
    version: int | None = None
    visibility: str | None = None


class ErasureRequest(BaseModel):
    """One note (``note_id``), one organisation (``organisation``), or one
    named person (``person``: the name or e-mail the notes were signed with,
    or a contact's; with ``organisation`` only within that organisation)."""

    note_id: str | None = Field(default=None, min_length=1, max_length=200)
    organisation: str | None = Field(default=None, min_length=1, max_length=200)
    person: str | None = Field(default=None, min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _one_target(self) -> ErasureRequest:
        if self.note_id is not None and (self.organisation or self.person):
            raise ValueError("note_id goes alone: give note_id, organisation or person")
        if self.note_id is None and self.organisation is None and self.person is None:
            raise ValueError("give note_id, organisation or person")
        if self.person is not None and not self.person.strip():
            raise ValueError("person is empty")
        return self


class ErasureDone(BaseModel):
    id: str
    note_ids: list[str]
    writings: list[str] = Field(
        default_factory=list,
        description="Other writings erased: self-assessments (sa:cycle:meeting), replies to"
        " feedback (ack:cycle:meeting) and action items (ai:cycle:item).",
    )
    themes_refreshed: int
    mining_runs: list[str] = Field(
        default_factory=list,
        description="Re-mines started for the affected scopes (GET /v1/mining-runs/{id});"
        " empty without Temporal: the next scheduled run re-computes the themes.",
    )


async def _correction_body(
    request: Request, settings: SettingsDep, note: privacy.NoteRef, language: str | None
) -> tuple[NoteCreate, Visibility | None, uploads.Upload | None]:
    """The new text as a NoteCreate (the same validation as POST), from JSON,
    text/markdown, text/plain or a multipart ``file``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    org = note.author_organisation
    try:
        if ctype in ("application/json", ""):
            body = NoteCorrection.model_validate_json(await request.body() or b"{}")
            lang = body.language or note.language
            new = NoteCreate(author_organisation=org, language=lang, text=body.text,
                             format=body.format)  # fmt: skip
            return new, body.visibility, None
        if ctype in ("text/markdown", "text/plain"):
            text = (await request.body()).decode("utf-8")
            lang = language or request.headers.get("content-language") or note.language
            fmt: Literal["text", "markdown"] = "markdown" if ctype == "text/markdown" else "text"
            new = NoteCreate(author_organisation=org, language=lang, text=text, format=fmt)
            return new, None, None
    except UnicodeDecodeError as exc:
        raise Problem(422, f"invalid note body: {exc}") from exc
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise Problem(422, detail) from exc
    if ctype != "multipart/form-data":
        raise Problem(415, f"unsupported content type {ctype!r}; use JSON, text/markdown,"
                      " text/plain or multipart/form-data with a file")  # fmt: skip
    upload, data, fields = await uploads.read_file_field(request, settings.max_document_bytes)
    filename = (upload.filename or "upload").strip()[:255] or "upload"
    try:
        doc = await asyncio.to_thread(
            documents.extract, filename, upload.content_type, data,
            max_bytes=settings.max_document_bytes, max_pages=settings.max_document_pages,
        )  # fmt: skip
    except documents.DocumentError as exc:
        raise Problem(exc.status, exc.message, filename=filename) from exc
    lang = fields.get("language") or doc.language or note.language
    vis = fields.get("visibility") or None
    if vis is not None and vis not in privacy.VISIBILITIES:
        raise Problem(422, f"visibility must be one of {', '.join(privacy.VISIBILITIES)}")
    try:
        new = NoteCreate(author_organisation=org, language=lang, text=doc.text, format="markdown")
    except ValidationError as exc:
        raise Problem(422, str(exc)) from exc
    return new, vis, uploads.Upload(filename=filename, data=data, document=doc)  # type: ignore[return-value]


@router.put(
    "/v1/notes/{note_id}",
    response_model=NoteChanged,
    responses={
        404: {"description": "Unknown note or outside the grant"},
        409: {"description": "The note window is closed"},
    },
)
async def correct_note(
    note_id: str,
    request: Request,
    pool: Pool,
    settings: SettingsDep,
    language: Annotated[str | None, Query(max_length=16)] = None,
    principal: Principal = require(Role.manager, Role.partner),
) -> NoteChanged:
    """A new version of the note (JSON, text/markdown, text/plain or a file):
    the old statements leave themes, practices and search; the new text is mined."""
    async with pool.connection() as conn:
        ref = await privacy.load_note(conn, note_id, principal)
    if not ref.window_open:
        raise Problem(409, f"the note window of meeting {ref.meeting_id!r} is closed")
    new, vis, upload = await _correction_body(request, settings, ref, language)
    check_note_text(new.text, settings)
    async with pool.connection() as conn, conn.transaction():
        ref = await privacy.load_note(conn, note_id, principal)
        try:
            version = await privacy.correct(
                conn, ref, text=new.text, language=new.language, fmt=new.format,
                by=principal.key_id, visibility=vis,
            )  # fmt: skip
        except privacy.WindowClosed as exc:
            raise Problem(409, str(exc)) from exc
        if upload is not None:
            await conn.execute("DELETE FROM note_originals WHERE note_id = %s", (note_id,))
    if upload is not None:
        await uploads.keep_original(pool, upload, note_id, ref.cycle_id)
    return NoteChanged(note_id=note_id, version=version, visibility=vis or ref.visibility)


@router.delete(
    "/v1/notes/{note_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "Unknown note"}, 409: {"description": "Window closed"}},
)
async def withdraw_note(
    note_id: str, pool: Pool, principal: Principal = require(Role.manager, Role.partner)
) -> Response:
    """Withdraw the note: it leaves the notes, themes, practices and search."""
    async with pool.connection() as conn, conn.transaction():
        ref = await privacy.load_note(conn, note_id, principal)
        try:
            await privacy.withdraw(conn, ref, by=principal.key_id)
        except privacy.WindowClosed as exc:
            raise Problem(409, str(exc)) from exc
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch("/v1/notes/{note_id}", response_model=NoteChanged)
async def change_visibility(
    note_id: str,
    body: NoteVisibility,
    pool: Pool,
    principal: Principal = require(Role.manager, Role.partner),
) -> NoteChanged:
    """Who may read the note's statements; the author may change it at any time."""
    async with pool.connection() as conn, conn.transaction():
        ref = await privacy.load_note(conn, note_id, principal)
        if body.visibility != ref.visibility:
            await privacy.set_visibility(conn, ref, body.visibility, by=principal.key_id)
    return NoteChanged(note_id=note_id, version=ref.version, visibility=body.visibility)


@router.post(
    "/v1/erasures",
    status_code=status.HTTP_201_CREATED,
    response_model=ErasureDone,
    responses={404: {"description": "Unknown note, or no note of that person"}},
)
async def erase(
    body: ErasureRequest,
    pool: Pool,
    temporal: OptionalTemporal,
    settings: SettingsDep,
    principal: Principal = require(Role.admin),
) -> ErasureDone:
    """Erase one note, everything an organisation wrote, or everything a
    named person wrote (right to erasure)."""
    async with pool.connection() as conn, conn.transaction():
        done = await privacy.erase(
            conn, note_id=body.note_id, organisation=body.organisation, person=body.person,
            requested_by=principal.key_id, reason=body.reason,
        )  # fmt: skip
        refreshed = await store.refresh_practices(conn, done.theme_ids) if done.theme_ids else 0
    # Themes re-computed without the erased words: labels and keyphrases
    # that shared one are withheld meanwhile (privacy.forget_statements).
    runs = await remine_themes(pool, temporal, settings, done.theme_ids, trigger="erasure")
    return ErasureDone(
        id=done.id,
        note_ids=done.note_ids,
        writings=done.writings,
        themes_refreshed=refreshed,
        mining_runs=runs,
    )


@router.get("/v1/organisations/{organisation}/export")
async def export_organisation(
    organisation: str,
    pool: Pool,
    principal: CurrentPrincipal,
    person: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="Only what this person wrote"),
    ] = None,
) -> dict[str, Any]:
    """Right to a copy: everything the organisation (or one of its people) wrote, as JSON."""
    if principal.role is not Role.admin and not (
        principal.role is Role.partner and principal.organisation == organisation
    ):
        raise NotFound(f"organisation {organisation!r} not found")
    async with pool.connection() as conn:
        return await privacy.export_organisation(conn, organisation, person=person)
