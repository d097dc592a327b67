"""RFC 9457 problem details for every error the API returns.

Routers raise :class:`Problem` (or let FastAPI's validation fail), the shared
layer raises the domain errors of :mod:`peerlearn.access`; the handlers
here turn it into ``application/problem+json`` with a precise ``detail``, so a
client never has to parse an HTML page or a bare string.
"""

from __future__ import annotations

from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from peerlearn import access

PROBLEM_JSON = "application/problem+json"

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """An error with an HTTP status and a human-readable reason."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.type = type_
        self.headers = headers
        self.extra = extra


def problem_response(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    type_: str = "about:blank",
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


# The domain errors of the shared layer (peerlearn.access) and their HTTP status:
# the one place where a NotFound becomes a 404.
ACCESS_STATUS: dict[type[access.AccessError], int] = {
    access.BadRequest: 400,
    access.Forbidden: 403,
    access.NotFound: 404,
    access.Invalid: 422,
}


def access_status(exc: access.AccessError) -> int:
    """The HTTP status of a domain error (its nearest mapped class; 400 otherwise)."""
    for cls in type(exc).__mro__:
        if cls in ACCESS_STATUS:
            return ACCESS_STATUS[cls]
    return 400


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc if p not in ("body",)) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.detail,
            title=exc.title,
            type_=exc.type,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extra,
        )

    @app.exception_handler(access.AccessError)
    async def _access(request: Request, exc: access.AccessError) -> JSONResponse:
        return problem_response(access_status(exc), exc.message, instance=request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _loc(e.get("loc", ())),
                "message": str(e.get("msg", "")),
                "type": e.get("type"),
            }
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return problem_response(422, detail, instance=request.url.path, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(
            exc.status_code,
            str(exc.detail),
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(psycopg.errors.DeadlockDetected)
    @app.exception_handler(psycopg.errors.SerializationFailure)
    @app.exception_handler(psycopg.errors.LockNotAvailable)
    async def _conflict(request: Request, exc: psycopg.Error) -> JSONResponse:
        # Two writers met (e.g. a visibility change and a mining write on the
        # same note): PostgreSQL aborted this transaction whole, so nothing
        # was written; the same request again succeeds.
        return problem_response(
            503,
            "a concurrent change to the same data got in the way; nothing was written,"
            " send the request again",
            instance=request.url.path,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        # Never leak a traceback; the log has it.
        import logging

        logging.getLogger("peerlearn.api").exception("unhandled error on %s", request.url.path)
        return problem_response(
            500, "internal error; see the server log", instance=request.url.path
        )
