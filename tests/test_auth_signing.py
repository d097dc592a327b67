"""Webhook signatures: unit checks of sign/verify, and a real delivery by the
outbox activity to a local HTTP receiver that verifies every request with the
programme's secret (as ``peerlearn keys webhook-secret`` prints it)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import ActivityEnvironment

from peerlearn import keys, signing
from peerlearn.settings import Settings


def test_sign_and_verify_roundtrip() -> None:
    body = b'{"kind": "reminder", "id": "c1:7"}'
    header = signing.sign_payload("whsec_abc", body, now=1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert signing.verify("whsec_abc", body, header, now=1_700_000_100) == 1_700_000_000
    for secret, b, hdr, now, needle in [
        ("whsec_other", body, header, 1_700_000_000, "does not match"),
        ("whsec_abc", body + b" ", header, 1_700_000_000, "does not match"),
        ("whsec_abc", body, header, 1_700_000_000 + 301, "older"),
        ("whsec_abc", body, None, 1_700_000_000, "no "),
        ("whsec_abc", body, "v1=deadbeef", 1_700_000_000, "t=<unix>"),
        ("whsec_abc", body, "t=soon,v1=00", 1_700_000_000, "integer"),
    ]:
        with pytest.raises(signing.SignatureError, match=needle):
            signing.verify(secret, b, hdr, now=now)
    # a tampered timestamp breaks the MAC too
    forged = header.replace("t=1700000000", "t=1700000050")
    with pytest.raises(signing.SignatureError):
        signing.verify("whsec_abc", body, forged, now=1_700_000_050)
    # during a rotation either secret verifies
    both = signing.sign_payload_multi(["old", "new"], body, now=5)
    assert signing.verify("new", body, both, now=5) == 5
    assert signing.verify("old", body, both, now=5) == 5


def test_secret_is_per_programme_and_stable(database_url: str) -> None:
    a = keys.programme_secret(database_url, "prog-a")
    assert a.startswith("whsec_") and keys.programme_secret(database_url, "prog-a") == a
    assert keys.programme_secret(database_url, "prog-b") != a
    rotated = keys.programme_secret(database_url, "prog-a", rotate=True)
    assert rotated != a and keys.programme_secret(database_url, "prog-a") == rotated


class _Receiver(ThreadingHTTPServer):
    secret = ""
    received: list[dict[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        try:
            signing.verify(self.server.secret, body, self.headers.get(signing.SIGNATURE_HEADER))
            ok = True
        except signing.SignatureError:
            ok = False
        self.server.received.append(
            {"ok": ok, "key": self.headers.get("Idempotency-Key"), "body": json.loads(body)}
        )
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    srv = _Receiver(("127.0.0.1", 0), _Handler)
    srv.received = []
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


async def test_outbox_delivery_is_signed_and_verifiable(
    fresh_database_url: str, receiver: _Receiver
) -> None:
    pytest.importorskip("activities.notify")
    from activities.notify import NotifyActivities
    from workflows.types import DeliverOutboxInput

    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    now = datetime.now(UTC)
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO programmes (id, name, time_zone, webhook_url, created_at, updated_at,"
            " version) VALUES ('prog-s', 'Signed', 'Europe/Stockholm', %s, %s, %s, 1)",
            (url, now, now),
        )
        for i in (1, 2):
            conn.execute(
                "INSERT INTO outbox (id, cycle_id, programme_id, kind, recipient, subject,"
                " payload, created_at) VALUES (%s, 'cyc-s', 'prog-s', 'reminder', 'org-a',"
                " 'notes due', %s, %s)",
                (f"cyc-s:{i}", Jsonb({"id": f"cyc-s:{i}", "kind": "reminder"}), now),
            )
    receiver.secret = keys.programme_secret(fresh_database_url, "prog-s")

    pool = AsyncConnectionPool(fresh_database_url, min_size=1, max_size=2, open=False)
    await pool.open()
    try:
        settings = Settings(  # the receiver listens on plain-http 127.0.0.1
            database_url=fresh_database_url, webhook_allow_private=True, webhook_allow_http=True
        )
        acts = NotifyActivities(pool, settings)
        out = await ActivityEnvironment().run(
            acts.deliver_outbox, DeliverOutboxInput(cycle_id="cyc-s")
        )
    finally:
        await pool.close()
    assert out.delivered == 2 and out.failed == 0
    assert [r["ok"] for r in receiver.received] == [True, True]
    assert sorted(r["key"] for r in receiver.received) == ["cyc-s:1", "cyc-s:2"]
