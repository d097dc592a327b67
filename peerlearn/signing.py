"""Webhook signatures: HMAC-SHA256 with a per-programme secret, timestamped.

Every webhook delivery carries::

    Peerlearn-Signature: t=<unix seconds>,v1=<hex hmac_sha256(secret, "<t>." + body)>

Signing the timestamp with the body lets a receiver refuse replays older than
a tolerance window; several ``v1=`` entries may appear while a secret is being
rotated (any match is accepted). Receivers get the secret with
``peerlearn keys webhook-secret <programme>`` and check deliveries with
:func:`verify` (or the same four lines in any language).

Outbox delivery (``activities/notify.py``) signs with::

    secret = await keys.programme_secret_async(conn, programme_id)
    headers[SIGNATURE_HEADER] = sign_payload(secret, body)
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

SIGNATURE_HEADER = "Peerlearn-Signature"
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """The delivery's signature is missing, malformed, stale or wrong."""


def _mac(secret: str | bytes, timestamp: int, body: bytes) -> str:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign_payload(secret: str | bytes, body: bytes, now: float | None = None) -> str:
    """The ``Peerlearn-Signature`` header value for ``body`` sent at ``now``."""
    t = int(time.time() if now is None else now)
    return f"t={t},v1={_mac(secret, t, body)}"


def sign_payload_multi(
    secrets: Iterable[str | bytes], body: bytes, now: float | None = None
) -> str:
    """One header signed with several secrets (during a rotation)."""
    t = int(time.time() if now is None else now)
    return ",".join([f"t={t}", *(f"v1={_mac(s, t, body)}" for s in secrets)])


def parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    sigs: list[str] = []
    for part in header.split(","):
        k, sep, v = part.strip().partition("=")
        if not sep:
            continue
        if k == "t":
            try:
                timestamp = int(v)
            except ValueError:
                raise SignatureError("the timestamp is not an integer") from None
        elif k == "v1":
            sigs.append(v)
    if timestamp is None or not sigs:
        raise SignatureError("the signature header needs t=<unix> and v1=<hex>")
    return timestamp, sigs


def verify(
    secret: str | bytes,
    body: bytes,
    header: str | None,
    *,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> int:
    """Check a delivery as a receiver; returns its timestamp or raises
    :class:`SignatureError`. ``body`` must be the raw bytes received."""
    if not header:
        raise SignatureError(f"no {SIGNATURE_HEADER} header")
    timestamp, sigs = parse_header(header)
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SignatureError(f"the signature is older (or newer) than {tolerance_s} s")
    expected = _mac(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, s) for s in sigs):
        raise SignatureError("the signature does not match")
    return timestamp
