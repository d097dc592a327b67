"""API keys: creation, hashing, verification, revocation, and the ``keys`` CLI.

A key looks like ``pl_<id>_<secret>``: ``id`` (12 hex characters) finds the row
without scanning, ``secret`` is 32 random bytes. Only sha256 of the whole key
is stored, so a database dump does not hand out working keys; because the
secret is high-entropy, a fast hash is as good as a slow one here.

The key is printed once by :func:`create_key` / ``peerlearn keys create`` and
cannot be recovered. Revocation and expiry are columns, checked on every
verification (the API caches a verified key for a few seconds, see
``api/auth.py``).

This module also keeps the per-programme webhook signing secrets
(``webhook_secrets``), created on first use; see ``peerlearn/signing.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from peerlearn.text_rules import person_name

ROLES = ("admin", "manager", "analyst", "partner")
KEY_PREFIX = "pl_"
_KEY_RE = re.compile(r"^pl_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


class KeySpecError(ValueError):
    """A key that cannot be created as asked (bad role, missing organisation)."""


@dataclass(frozen=True)
class KeyRecord:
    """A verified key's grant, as stored."""

    id: str
    role: str
    programmes: tuple[str, ...]
    organisation: str | None
    expires_at: datetime | None
    name: str = ""
    person: str | None = None  # partner keys of one named person (migration 0023)


def hash_key(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_key(token: str) -> str | None:
    """The key id inside ``token``, or None when it is not shaped like a key."""
    m = _KEY_RE.match(token)
    return m.group(1) if m else None


def _new_token() -> tuple[str, str]:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)  # 43 characters
    return key_id, f"{KEY_PREFIX}{key_id}_{secret}"


def _connect(
    conninfo_or_conn: str | psycopg.Connection[Any],
) -> tuple[psycopg.Connection[Any], bool]:
    if isinstance(conninfo_or_conn, str):
        return psycopg.connect(conninfo_or_conn, autocommit=True), True
    return conninfo_or_conn, False


def _validate_person(role: str, person: str | None) -> str | None:
    """A key's person: partner keys only, one line of at most 200 characters
    (spacing normalised, as a note's author_person is)."""
    if person is None or not person.strip():
        return None
    if role != "partner":
        raise KeySpecError("--person is for partner keys (the person who writes the notes)")
    try:
        return person_name(person)
    except ValueError as exc:
        raise KeySpecError(
            f"--person must be a name of at most 200 printable characters ({exc})"
        ) from exc


def _validate(role: str, programmes: Sequence[str], organisation: str | None) -> None:
    if role not in ROLES:
        raise KeySpecError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if role == "partner" and not organisation:
        raise KeySpecError("a partner key needs --organisation (the organisation it speaks for)")
    if role in ("manager", "analyst", "partner") and not programmes:
        raise KeySpecError(f"a {role} key needs at least one programme in its grant")


MAX_EXPIRES_IN_DAYS = 36_500  # a hundred years: beyond that, leave it unset (never expires)


def _validate_expiry(expires_in_days: float | None) -> None:
    """None means never; anything else must be a real, positive, bounded span.

    0 used to mean "never" by accident (falsy) and -5 created a key that was
    dead on arrival; both are mistakes worth one clear line.
    """
    if expires_in_days is None:
        return
    if not math.isfinite(expires_in_days) or expires_in_days <= 0:
        raise KeySpecError(
            f"--expires-in-days must be a positive number of days, not {expires_in_days:g} "
            "(leave it out for a key that never expires)"
        )
    if expires_in_days > MAX_EXPIRES_IN_DAYS:
        raise KeySpecError(
            f"--expires-in-days {expires_in_days:g} is more than {MAX_EXPIRES_IN_DAYS} days; "
            "leave it out for a key that never expires"
        )


def check_partner_grant(
    conninfo_or_conn: str | psycopg.Connection[Any],
    programmes: Iterable[str],
    organisation: str,
) -> None:
    """Raise :class:`KeySpecError` unless ``organisation`` is a partner of every
    programme in the grant.

    A partner key speaks for its organisation inside its programmes; a key for an
    organisation that is not a partner there (a typo, or a partner of another
    programme) could only ever be refused note by note, so it is refused here,
    once, naming the programme's partners.
    """
    progs = sorted({p for p in programmes if p})
    conn, own = _connect(conninfo_or_conn)
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute("SELECT id, partners FROM programmes WHERE id = ANY(%s)", (progs,))
            partners = {r["id"]: [str(p["id"]) for p in r["partners"]] for r in cur.fetchall()}
    finally:
        if own:
            conn.close()
    for prog in progs:
        if prog not in partners:
            raise KeySpecError(
                f"programme {prog!r} does not exist; register it first (POST /v1/programmes)"
            )
        if organisation not in partners[prog]:
            known = ", ".join(partners[prog]) or "none yet"
            raise KeySpecError(
                f"organisation {organisation!r} is not a partner of programme {prog!r} "
                f"(its partners: {known})"
            )


def create_key(
    conninfo_or_conn: str | psycopg.Connection[Any],
    role: str,
    programmes: Iterable[str] = (),
    organisation: str | None = None,
    expires_in_days: float | None = None,
    name: str = "",
    person: str | None = None,
) -> tuple[str, str]:
    """Create a key and return ``(key_id, key)``; the key is never shown again.

    Admin keys see every programme, so ``programmes`` is ignored for them.
    Managers, analysts and partners need a grant; partners an organisation.
    """
    progs = sorted({p for p in programmes if p})
    _validate(role, progs, organisation)
    _validate_expiry(expires_in_days)
    person = _validate_person(role, person)
    key_id, token = _new_token()
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    conn, own = _connect(conninfo_or_conn)
    try:
        conn.execute(
            "INSERT INTO api_keys (id, prefix, hash, name, role, programmes, organisation,"
            " expires_at, person) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                key_id,
                f"{KEY_PREFIX}{key_id}",
                hash_key(token),
                name,
                role,
                [] if role == "admin" else progs,
                organisation,
                expires,
                person,
            ),
        )
        if not own and not conn.autocommit:
            conn.commit()
    finally:
        if own:
            conn.close()
    return key_id, token


def revoke_key(conninfo_or_conn: str | psycopg.Connection[Any], key_id: str) -> bool:
    """Mark a key revoked; True when it existed and was live. API processes stop
    accepting it within their cache lifetime (a few seconds)."""
    conn, own = _connect(conninfo_or_conn)
    try:
        cur = conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL",
            (key_id,),
        )
        if not own and not conn.autocommit:
            conn.commit()
        return cur.rowcount == 1
    finally:
        if own:
            conn.close()


def list_keys(conninfo_or_conn: str | psycopg.Connection[Any]) -> list[dict[str, Any]]:
    conn, own = _connect(conninfo_or_conn)
    try:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT id, prefix, name, role, programmes, organisation, person, created,"
                " expires_at, revoked_at, last_used FROM api_keys ORDER BY created"
            )
            return list(cur.fetchall())
    finally:
        if own:
            conn.close()


def grant_programme(
    conninfo_or_conn: str | psycopg.Connection[Any], key_id: str, programme_id: str
) -> None:
    """Add a programme to a key's grant (a manager key that registers a programme
    gets it). Live API processes see it after their cache lifetime, or at once
    in the process that calls ``api.auth.forget_key``."""
    conn, own = _connect(conninfo_or_conn)
    try:
        conn.execute(
            "UPDATE api_keys SET programmes = array_append(programmes, %s)"
            " WHERE id = %s AND role <> 'admin' AND NOT (%s = ANY(programmes))",
            (programme_id, key_id, programme_id),
        )
        if not own and not conn.autocommit:
            conn.commit()
    finally:
        if own:
            conn.close()


async def grant_programme_async(
    conn: psycopg.AsyncConnection[Any], key_id: str, programme_id: str
) -> None:
    """:func:`grant_programme` inside the caller's transaction (API routers)."""
    await conn.execute(
        "UPDATE api_keys SET programmes = array_append(programmes, %s)"
        " WHERE id = %s AND role <> 'admin' AND NOT (%s = ANY(programmes))",
        (programme_id, key_id, programme_id),
    )


_LAST_USED_EVERY = timedelta(minutes=1)


async def verify_key(conn: psycopg.AsyncConnection[Any], token: str) -> KeyRecord | None:
    """The live key matching ``token``, or None (unknown, wrong secret, expired,
    revoked). Touches ``last_used`` at most once a minute per key."""
    key_id = parse_key(token)
    if key_id is None:
        return None
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, hash, role, programmes, organisation, expires_at, revoked_at,"
            " last_used, name, person, now() AS now FROM api_keys WHERE id = %s",
            (key_id,),
        )
        r = await cur.fetchone()
    if r is None:
        return None
    if not hmac.compare_digest(bytes(r["hash"]), hash_key(token)):
        return None
    now: datetime = r["now"]
    if r["revoked_at"] is not None or (r["expires_at"] is not None and r["expires_at"] <= now):
        return None
    if r["last_used"] is None or now - r["last_used"] > _LAST_USED_EVERY:
        await conn.execute("UPDATE api_keys SET last_used = now() WHERE id = %s", (key_id,))
    return KeyRecord(
        id=r["id"],
        role=r["role"],
        programmes=tuple(r["programmes"] or ()),
        organisation=r["organisation"],
        expires_at=r["expires_at"],
        name=r["name"],
        person=r["person"],
    )


# --- per-programme webhook secrets ------------------------------------------------


def programme_secret(
    conninfo_or_conn: str | psycopg.Connection[Any], programme_id: str, *, rotate: bool = False
) -> str:
    """The programme's webhook signing secret, created on first use."""
    conn, own = _connect(conninfo_or_conn)
    try:
        if rotate:
            conn.execute(
                "INSERT INTO webhook_secrets (programme_id, secret) VALUES (%s, %s)"
                " ON CONFLICT (programme_id) DO UPDATE SET secret = EXCLUDED.secret,"
                " rotated_at = now()",
                (programme_id, "whsec_" + secrets.token_urlsafe(32)),
            )
        else:
            conn.execute(
                "INSERT INTO webhook_secrets (programme_id, secret) VALUES (%s, %s)"
                " ON CONFLICT (programme_id) DO NOTHING",
                (programme_id, "whsec_" + secrets.token_urlsafe(32)),
            )
        row = conn.execute(
            "SELECT secret FROM webhook_secrets WHERE programme_id = %s", (programme_id,)
        ).fetchone()
        if not own and not conn.autocommit:
            conn.commit()
        assert row is not None
        return str(row["secret"] if isinstance(row, dict) else row[0])
    finally:
        if own:
            conn.close()


async def programme_secret_async(conn: psycopg.AsyncConnection[Any], programme_id: str) -> str:
    """:func:`programme_secret` for activities (webhook delivery) on the async pool."""
    await conn.execute(
        "INSERT INTO webhook_secrets (programme_id, secret) VALUES (%s, %s)"
        " ON CONFLICT (programme_id) DO NOTHING",
        (programme_id, "whsec_" + secrets.token_urlsafe(32)),
    )
    cur = await conn.execute(
        "SELECT secret FROM webhook_secrets WHERE programme_id = %s", (programme_id,)
    )
    row = await cur.fetchone()
    assert row is not None
    return str(row["secret"] if isinstance(row, dict) else row[0])


# --- CLI ------------------------------------------------------------------------


def _conninfo() -> str:
    from peerlearn import db
    from peerlearn.settings import get_settings

    conninfo = db.database_url(get_settings())
    db.wait_for_database(conninfo)
    db.migrate(conninfo)
    return conninfo


def _cmd_create(args: argparse.Namespace) -> int:
    # refuse bad input before touching the database
    _validate(args.role, sorted(set(args.programme or ())), args.organisation)
    _validate_expiry(args.expires_in_days)
    person = _validate_person(args.role, args.person)
    conninfo = _conninfo()
    if args.role == "partner":
        check_partner_grant(conninfo, args.programme or (), args.organisation)
    key_id, token = create_key(
        conninfo,
        args.role,
        args.programme or (),
        args.organisation,
        args.expires_in_days,
        args.name or "",
        person,
    )
    print(f"key id:  {key_id}")
    print(f"role:    {args.role}")
    if args.role != "admin":
        print(f"grant:   {', '.join(sorted(set(args.programme or ())))}")
    if args.organisation:
        print(f"org:     {args.organisation}")
    if person:
        print(f"person:  {person} (signs the notes sent with this key)")
    print(f"key:     {token}")
    print("Store the key now: it is shown only once (only its hash is kept).")
    return 0


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, datetime):
        return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    if isinstance(v, list):
        return ",".join(v) or "*"
    return str(v)


def _cmd_list(args: argparse.Namespace) -> int:
    rows = list_keys(_conninfo())
    now = datetime.now(UTC)
    cols = [
        "id",
        "role",
        "programmes",
        "organisation",
        "name",
        "created",
        "expires_at",
        "last_used",
    ]
    print("  ".join(c.ljust(16) for c in [*cols, "state"]))
    for r in rows:
        state = (
            "revoked"
            if r["revoked_at"]
            else "expired"
            if r["expires_at"] and r["expires_at"] <= now
            else "live"
        )
        if state != "live" and not args.all:
            continue
        print("  ".join(_fmt(r[c]).ljust(16) for c in cols) + "  " + state)
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    if revoke_key(_conninfo(), args.key_id):
        print(f"revoked {args.key_id}")
        return 0
    print(f"no live key {args.key_id!r}")
    return 1


def _cmd_secret(args: argparse.Namespace) -> int:
    print(programme_secret(_conninfo(), args.programme, rotate=args.rotate))
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("keys", help="create, list and revoke API keys")
    sub = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    c = sub.add_parser("create", help="create a key (printed once)")
    c.add_argument("--role", required=True, choices=ROLES)
    c.add_argument("--programme", action="append", help="programme id in the grant (repeatable)")
    c.add_argument("--organisation", help="partner keys: the organisation id it speaks for")
    c.add_argument("--expires-in-days", type=float, default=None)
    c.add_argument("--name", help="free label, e.g. who holds it")
    c.add_argument(
        "--person",
        help="partner keys: the named person who holds it; notes sent with it are signed"
        " by them (and found by 'peerlearn erase --person')",
    )
    c.set_defaults(func=_cmd_create)

    ls = sub.add_parser("list", help="list keys (never their secrets)")
    ls.add_argument("--all", action="store_true", help="include revoked and expired keys")
    ls.set_defaults(func=_cmd_list)

    r = sub.add_parser("revoke", help="revoke a key by id")
    r.add_argument("key_id")
    r.set_defaults(func=_cmd_revoke)

    s = sub.add_parser("webhook-secret", help="print a programme's webhook signing secret")
    s.add_argument("programme")
    s.add_argument("--rotate", action="store_true", help="replace it with a new one first")
    s.set_defaults(func=_cmd_secret)
