"""Who is calling: API keys carrying a role and a grant of programmes.

Every request under ``/v1`` is authenticated by :class:`AuthMiddleware` before
any router runs, so a router that forgets a dependency still cannot be reached
without a valid key (401 problem+json with ``WWW-Authenticate: Bearer``;
expired and revoked keys included). Routers depend on :data:`CurrentPrincipal`
(or :func:`require`) and filter every list and search by
:meth:`Principal.programme_filter`, so nothing leaks across programmes.

The principal, its roles and the grant checks (domain errors, no HTTP) live in
:mod:`peerlearn.access`; they are re-exported here for the routers.

Verified keys are cached per process for :data:`CACHE_SECONDS` because the
analyst API has a 50 ms p95 budget and a key lookup is a database round trip;
the price is that a revocation made by another process (the CLI) takes
effect within that many seconds. There is deliberately no setting that turns
authentication off: tests create real keys (``tests/auth_helpers.py``).
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Request
from starlette.types import ASGIApp, Receive, Scope, Send

from api.problems import Problem, problem_response
from peerlearn import keys
from peerlearn.access import Principal, Role

__all__ = ["CurrentPrincipal", "Principal", "Role", "forget_key", "require", "verify"]

CACHE_SECONDS = 5.0
_CACHE_MAX = 10_000
PROTECTED_PREFIX = "/v1"


async def grant_new_programme(conn: Any, principal: Principal, programme_id: str) -> None:
    """Call when ``principal`` registers a programme: a manager key gets it in its
    grant (inside the caller's transaction), so it can run cycles there; this
    process's cached verification of the key is dropped so the grant shows."""
    if principal.role is Role.admin:
        return
    await keys.grant_programme_async(conn, principal.key_id, programme_id)
    forget_key(principal.key_id)


# --- verification and its short cache ---------------------------------------------

_cache: dict[bytes, tuple[float, Principal]] = {}


def forget_key(key_id: str | None = None) -> None:
    """Drop cached verifications (of one key, or all) in this process."""
    if key_id is None:
        _cache.clear()
        return
    for digest, (_, p) in list(_cache.items()):
        if p.key_id == key_id:
            _cache.pop(digest, None)


def _unauthorized(detail: str, error: str | None = None) -> Problem:
    challenge = 'Bearer realm="peerlearn"' + (f', error="{error}"' if error else "")
    return Problem(401, detail, headers={"WWW-Authenticate": challenge})


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise _unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized(
            "use the Bearer scheme: 'Authorization: Bearer <key>'", "invalid_request"
        )
    return token.strip()


async def verify(pool: Any, authorization: str | None) -> Principal:
    """The principal for an ``Authorization`` header value, or a 401 Problem."""
    token = _bearer(authorization)
    digest = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
    now = time.monotonic()
    hit = _cache.get(digest)
    if hit is not None and hit[0] > now:
        principal = hit[1]
        if principal.expires_at is None or principal.expires_at > datetime.now(UTC):
            return principal
        _cache.pop(digest, None)
    if keys.parse_key(token) is None:
        raise _unauthorized("malformed API key", "invalid_token")
    if pool is None:
        raise Problem(503, "the key store (PostgreSQL) is not available")
    async with pool.connection() as conn:
        record = await keys.verify_key(conn, token)
    if record is None:
        raise _unauthorized("unknown, expired or revoked API key", "invalid_token")
    principal = Principal(
        key_id=record.id,
        role=Role(record.role),
        programmes=frozenset(record.programmes),
        organisation=record.organisation,
        expires_at=record.expires_at,
        person=record.person,
    )
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[digest] = (now + CACHE_SECONDS, principal)
    return principal


class AuthMiddleware:
    """Authenticates every ``/v1`` request before routing (pure ASGI, cheap).

    Unknown ``/v1`` paths answer 401 too, so the route map is not probeable
    without a key. The principal is left in ``scope["state"]`` for
    :data:`CurrentPrincipal`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _protected(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        if not authorization and _calendar_token_request(scope):
            # Calendar apps cannot send headers: the feed route checks its token.
            await self.app(scope, receive, send)
            return
        app = scope.get("app")
        pool = getattr(getattr(app, "state", None), "pool", None)
        try:
            principal = await verify(pool, authorization)
        except Problem as exc:
            response = problem_response(
                exc.status, exc.detail, instance=scope.get("path"), headers=exc.headers
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


_CALENDAR_FEED = re.compile(r"/v1/cycles/[^/]+/calendar\.ics")


def _calendar_token_request(scope: Scope) -> bool:
    """A GET of exactly a cycle's calendar feed with a ``token`` query parameter;
    the route (``api/routers/calendar.py``) verifies the token or answers 401."""
    if scope.get("method") != "GET" or not _CALENDAR_FEED.fullmatch(scope.get("path", "")):
        return False
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    return bool(query.get("token"))


def _protected(path: str) -> bool:
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


async def _principal(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if isinstance(principal, Principal):
        return principal
    # A route outside /v1 that asks for a principal verifies here.
    principal = await verify(
        getattr(request.app.state, "pool", None), request.headers.get("authorization")
    )
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(_principal)]


def require(*roles: Role) -> Any:
    """Dependency factory: the caller must hold one of ``roles`` (admin always may)."""

    async def _dep(principal: CurrentPrincipal) -> Principal:
        if principal.role is not Role.admin and principal.role not in roles:
            raise Problem(
                403,
                f"role {principal.role.value!r} may not do this; needs one of "
                + ", ".join(r.value for r in roles),
            )
        return principal

    return Depends(_dep)


def install(app: Any) -> None:
    """Add the authentication middleware to ``app`` (called by ``create_app``) and
    declare the Bearer scheme on every /v1 operation in the OpenAPI document."""
    app.add_middleware(AuthMiddleware)
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema: dict[str, Any] = original()
        comps = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        comps["apiKey"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key from `peerlearn keys create`.",
        }
        for path, ops in schema.get("paths", {}).items():
            if not _protected(path):
                continue
            for op in ops.values():
                if isinstance(op, dict):
                    op.setdefault("security", [{"apiKey": []}])
                    op.setdefault("responses", {}).setdefault(
                        "401", {"description": "No valid API key (problem+json)"}
                    )
        app.openapi_schema = schema
        return schema

    app.openapi = openapi
