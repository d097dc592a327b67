"""Global input limits, enforced before any router sees a request.

:class:`LimitsMiddleware` is a pure ASGI middleware so it can refuse a request
from its headers alone (``Content-Length`` over the limit: 413 without reading
the body) and count bytes of bodies sent without a length (chunked), stopping
at the limit rather than buffering whatever a client streams. JSON bodies are
then checked for what would otherwise surface as a 500 deep inside the stack:
invalid UTF-8, NUL characters and lone surrogates (PostgreSQL ``text`` cannot
hold them) and absurd nesting (a recursion bomb for parsers and validators).
NUL in the path or query string is refused for the same reason.

Limits that depend on the resource (note length, statements per note, page
size) are applied by the routers with the helpers at the end of this module,
all from :class:`peerlearn.settings.Settings`.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import Problem, problem_response
from peerlearn.settings import Settings
from peerlearn.text_rules import describe_forbidden

MAX_JSON_DEPTH = 32


class LimitsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_json_depth: int = MAX_JSON_DEPTH,
        max_upload_bytes: int = 0,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # documents (multipart) and import files (CSV, JSONL) may be larger
        self.max_upload_bytes = max(max_body_bytes, max_upload_bytes)
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self._check_target(scope)
            declared = _content_length(scope)
            limit = self.max_upload_bytes if _is_upload(scope) else self.max_body_bytes
            if declared is not None and declared > limit:
                raise _too_large(limit)
            if declared == 0 or (declared is None and not _has_chunked_body(scope)):
                await self.app(scope, receive, send)
                return
            body = await self._read_body(receive, limit)
            if body and _is_json(scope):
                check_json_body(body, self.max_json_depth)
        except Problem as exc:
            response = problem_response(
                exc.status, exc.detail, instance=scope.get("path"), headers=exc.headers
            )
            await response(scope, receive, send)
            return

        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # http.disconnect, for streaming responses

        await self.app(scope, replay, send)

    def _check_target(self, scope: Scope) -> None:
        raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
        if b"\x00" in unquote_to_bytes(raw_path) or "\x00" in scope.get("path", ""):
            raise Problem(400, "the path contains a NUL character")
        query = scope.get("query_string", b"")
        if query:
            decoded = unquote_to_bytes(query.replace(b"+", b" "))
            if b"\x00" in decoded:
                raise Problem(400, "the query string contains a NUL character")
            try:
                decoded.decode("utf-8")
            except UnicodeDecodeError:
                raise Problem(400, "the query string is not valid UTF-8") from None

    async def _read_body(self, receive: Receive, limit: int) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Problem(400, "the client disconnected while sending the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _too_large(limit: int) -> Problem:
    return Problem(413, f"the request body is larger than {limit} bytes", max_body_bytes=limit)


def _header(scope: Scope, name: bytes) -> bytes | None:
    for k, v in scope.get("headers", ()):
        if k == name:
            return bytes(v)
    return None


def _content_length(scope: Scope) -> int | None:
    raw = _header(scope, b"content-length")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise Problem(400, "Content-Length is not a number") from None
    if value < 0:
        raise Problem(400, "Content-Length is negative")
    return value


def _has_chunked_body(scope: Scope) -> bool:
    te = _header(scope, b"transfer-encoding")
    return te is not None and b"chunked" in te.lower()


def _is_json(scope: Scope) -> bool:
    """JSON bodies, and bodies with no Content-Type at all: the routers read
    those as JSON too, so they get the same checks (a ``\u0000`` sent without
    a Content-Type must not slip past them)."""
    ctype = (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
    return ctype in (b"application/json", b"") or ctype.endswith(b"+json")


_UPLOAD_TYPES = (
    b"multipart/form-data",
    b"text/csv",
    b"application/x-ndjson",
    b"application/jsonl",
    b"application/x-jsonlines",
)


def _is_upload(scope: Scope) -> bool:
    ctype = (_header(scope, b"content-type") or b"").split(b";")[0].strip().lower()
    return ctype in _UPLOAD_TYPES


def check_json_body(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise a Problem for JSON that is well-formed enough to reach a router but
    would break it. Malformed JSON is left to FastAPI's own 422."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, f"the body is not valid UTF-8 (byte {exc.start})") from None
    if "\x00" in text:
        raise Problem(400, "the body contains a raw NUL byte")
    if _too_deep_fast(text, max_depth):
        raise Problem(422, f"JSON nested deeper than {max_depth} levels")
    try:
        value = json.loads(text)
    except RecursionError:
        raise Problem(422, f"JSON nested deeper than {max_depth} levels") from None
    except ValueError:
        return
    _walk(value, max_depth)


# A whole JSON string (escapes included) or one bracket; strings are skipped whole.
_TOKENS = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', re.DOTALL)


def _too_deep_fast(text: str, max_depth: int) -> bool:
    """Bracket depth outside strings, without building the value (a body of a
    million ``[`` would otherwise recurse in the parser)."""
    depth = 0
    for m in _TOKENS.finditer(text):
        ch = m.group()[0]
        if ch in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _walk(value: Any, max_depth: int) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, str):
            _check_str(v)
        elif isinstance(v, dict):
            if depth > max_depth:
                raise Problem(422, f"JSON nested deeper than {max_depth} levels")
            for k, item in v.items():
                _check_str(k)
                stack.append((item, depth + 1))
        elif isinstance(v, list):
            if depth > max_depth:
                raise Problem(422, f"JSON nested deeper than {max_depth} levels")
            stack.extend((item, depth + 1) for item in v)


def _check_str(s: str) -> None:
    if "\x00" in s:
        raise Problem(422, "text fields may not contain NUL (\\u0000) characters")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise Problem(422, "text fields may not contain lone UTF-16 surrogates") from None


# --- per-resource limits, for routers ----------------------------------------------


def page_size(limit: int | None, settings: Settings, default: int = 50) -> int:
    """A page size within ``1..settings.max_page_size`` or a 422 saying why."""
    if limit is None:
        return min(default, settings.max_page_size)
    if limit < 1 or limit > settings.max_page_size:
        raise Problem(422, f"limit must be between 1 and {settings.max_page_size}")
    return limit


_STATEMENT_BREAK = re.compile(r"(?:[.!?。]+\s+|\n+)")


def validate_note_text(text: str) -> str:
    """The one character check of every note body (JSON with or without a
    Content-Type, text/plain, Markdown, extracted documents, imports): NUL,
    lone surrogates and control characters other than tab, newline and
    carriage return are a 422 naming the character and its position.
    Returns ``text`` so callers can use it inline."""
    problem = describe_forbidden(text)
    if problem is not None:
        raise Problem(422, problem)
    return text


def check_note_text(text: str, settings: Settings) -> None:
    """Characters (:func:`validate_note_text`), emptiness, length and a cheap
    upper bound on statements for a note, so an unstorable or oversized note
    is refused before it reaches the workflow or the miner."""
    validate_note_text(text)
    if not text.strip():
        raise Problem(422, "the note is empty")
    if len(text) > settings.max_note_chars:
        raise Problem(422, f"the note is longer than {settings.max_note_chars} characters")
    pieces = sum(1 for p in _STATEMENT_BREAK.split(text) if p.strip())
    if pieces > settings.max_statements_per_note:
        raise Problem(
            422,
            f"the note has more than {settings.max_statements_per_note} statements;"
            " split it into several notes",
        )


def install(app: Any, settings: Settings) -> None:
    """Outermost after Starlette's error middleware, so limits apply before auth."""
    app.add_middleware(
        LimitsMiddleware,
        max_body_bytes=settings.max_body_bytes,
        max_upload_bytes=max(settings.max_document_bytes, settings.max_import_bytes) + 65_536,
    )
