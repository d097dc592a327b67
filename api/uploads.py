"""Notes uploaded as files: read the multipart form, extract the document's
text, keep the original (content-addressed) and link it to the note.

The notes router calls :func:`note_from_upload` for a ``multipart/form-data``
body and then runs the very same code path as a JSON note (note-text
validation, authorisation, the workflow's update); this module only turns a
file into a :class:`~api.schemas_cycles.NoteCreate` and stores the bytes.

The original is stored only once the workflow has accepted the note (a
refused upload leaves no bytes behind), together with its link to the note id,
in one idempotent transaction: a retried upload with the same idempotency key
finishes an interrupted store instead of duplicating anything.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi import Request
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from api.problems import Problem
from api.schemas_cycles import NoteCreate
from peerlearn import documents
from peerlearn.settings import Settings

#: Form fields a note upload may carry besides ``file``.
FORM_FIELDS = ("author_organisation", "language", "client_key", "visibility", "author_person")


@dataclass(frozen=True)
class Upload:
    """One uploaded file and what was extracted from it."""

    filename: str
    data: bytes
    document: documents.ExtractedDocument


async def read_file_field(
    request: Request, max_bytes: int, field: str = "file"
) -> tuple[UploadFile, bytes, dict[str, str]]:
    """The form's one file (bytes read, size checked) and its text fields."""
    async with request.form(max_files=1, max_fields=len(FORM_FIELDS) + 4) as form:
        upload = form.get(field)
        if not isinstance(upload, UploadFile):
            raise Problem(422, f"the form needs a file field named {field!r}")
        data = await upload.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise Problem(
                413,
                f"the file is larger than {max_bytes} bytes; documents may be at most that",
                max_bytes=max_bytes,
            )
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
    return upload, data, fields


async def note_from_upload(
    request: Request, settings: Settings, programme_languages: list[str]
) -> tuple[NoteCreate, Upload]:
    """A NoteCreate (format markdown: the extracted text keeps ``#`` headings and
    ``- `` items) from the multipart form, plus the file to keep."""
    upload, data, fields = await read_file_field(request, settings.max_document_bytes)
    filename = (upload.filename or "upload").strip()[:255] or "upload"
    try:
        doc = await asyncio.to_thread(
            documents.extract,
            filename,
            upload.content_type,
            data,
            max_bytes=settings.max_document_bytes,
            max_pages=settings.max_document_pages,
        )
    except documents.DocumentError as exc:
        raise Problem(exc.status, exc.message, filename=filename) from exc
    org = fields.get("author_organisation") or request.headers.get("x-author-organisation")
    if not org:
        raise Problem(422, "a document upload needs the author_organisation form field")
    language = fields.get("language") or doc.language
    if not language:
        language = await asyncio.to_thread(guess_language, doc.text, tuple(programme_languages))
    try:
        note = NoteCreate(
            author_organisation=org,
            language=language,
            text=doc.text,
            format="markdown",
            client_key=fields.get("client_key") or None,
            visibility=fields.get("visibility") or None,  # type: ignore[arg-type]  # validated
            author_person=fields.get("author_person") or request.headers.get("x-author-person"),
        )
    except ValidationError as exc:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise Problem(422, detail) from exc
    return note, Upload(filename=filename, data=data, document=doc)


def guess_language(text: str, programme_languages: tuple[str, ...]) -> str:
    """The document's language when neither the form nor the file says it:
    the programme's only language, else detected among the programme's."""
    codes = tuple(sorted({c.lower() for c in programme_languages if c}))
    if len(codes) == 1:
        return codes[0]
    found = documents.guess_language(text, codes)
    if found is None:
        raise Problem(422, "cannot tell the document's language; give the language form field")
    return found


async def keep_original(
    pool: AsyncConnectionPool, upload: Upload, note_id: str, cycle_id: str
) -> None:
    """Store the file's bytes once per content (sha256) and record that
    ``note_id`` came from it, in one transaction (first link wins)."""
    doc = upload.document
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO document_blobs (sha256, format, media_type, size, data)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (sha256) DO NOTHING",
            (doc.sha256, doc.format, doc.media_type, len(upload.data), upload.data),
        )
        await conn.execute(
            "INSERT INTO note_originals (note_id, cycle_id, sha256, filename, pages)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (note_id) DO NOTHING",
            (note_id, cycle_id, doc.sha256, upload.filename, doc.pages),
        )
