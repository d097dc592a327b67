"""Webhook SSRF on the real stack: refused at programme create/edit (422), and
checked again at delivery (a refused target is recorded once, never retried)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio
from auth_helpers import admin_headers, api_client
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from api.main import create_app
from peerlearn.settings import Settings
from workflows.types import DeliverOutboxInput

PARTNERS = [{"id": "vaxa", "name": "Växa", "country": "SE", "kind": "cluster"}]


def _body(url: str) -> dict[str, Any]:
    pid = "ssrf-" + uuid.uuid4().hex[:8]
    return {"id": pid, "name": "x", "time_zone": "UTC", "partners": PARTNERS, "webhook_url": url}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=database_url, temporal_address="127.0.0.1:1")
    async with api_client(create_app(settings), admin_headers(database_url)) as c:
        yield c


async def test_programme_webhooks_to_internal_targets_are_422(client: httpx.AsyncClient) -> None:
    for url, needle in [
        ("http://169.254.169.254/latest/meta-data/", "https"),  # http refused first
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[fe80::1]/hook", "link-local"),
        ("https://127.0.0.1:5432/", "private"),
        ("https://localhost/hook", "private"),  # a name is resolved and checked
        ("https://10.0.0.5/hook", "private"),
        ("https://192.168.1.20/hook", "private"),
        ("https://[::ffff:127.0.0.1]/hook", "private"),
        ("https://0.0.0.0/hook", "unspecified"),
        ("https://admin:pw@8.8.8.8/hook", "credentials"),
    ]:
        r = await client.post("/v1/programmes", json=_body(url))
        assert r.status_code == 422, (url, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert needle in r.json()["detail"], (url, r.text)
    ok = await client.post("/v1/programmes", json=_body("https://8.8.8.8/hook"))
    assert ok.status_code == 201, ok.text
    pid = ok.json()["id"]
    r = await client.patch(
        f"/v1/programmes/{pid}", json={"webhook_url": "https://169.254.169.254/x"}
    )
    assert r.status_code == 422 and "link-local" in r.json()["detail"], r.text
    got = await client.get(f"/v1/programmes/{pid}")
    assert got.json()["webhook_url"] == "https://8.8.8.8/hook"  # unchanged


async def test_private_targets_need_the_setting(database_url: str) -> None:
    settings = Settings(
        database_url=database_url,
        temporal_address="127.0.0.1:1",
        webhook_allow_private=True,
        webhook_allow_http=True,
    )
    async with api_client(create_app(settings), admin_headers(database_url)) as c:
        r = await c.post("/v1/programmes", json=_body("http://10.0.0.5:8080/hook"))
        assert r.status_code == 201, r.text
        r = await c.post("/v1/programmes", json=_body("http://169.254.169.254/x"))
        assert r.status_code == 422  # the metadata range stays refused


class _Receiver(ThreadingHTTPServer):
    received: list[dict[str, str]]


class _Handler(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append({"host": self.headers["Host"]})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    srv = _Receiver(("127.0.0.1", 0), _Handler)
    srv.received = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


async def test_delivery_checks_the_resolved_address_again(
    fresh_database_url: str, receiver: _Receiver
) -> None:
    """A programme whose webhook host now resolves to loopback (saved before the
    rule, or re-pointed in DNS): the delivery is refused, recorded, not retried;
    with the setting on, it is delivered to the checked address, Host kept."""
    url = f"http://localhost:{receiver.server_address[1]}/hook"
    now = datetime.now(UTC)
    with psycopg.connect(fresh_database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO programmes (id, name, time_zone, webhook_url, created_at, updated_at,"
            " version) VALUES ('prog-r', 'Rebound', 'UTC', %s, %s, %s, 1)",
            (url, now, now),
        )
        conn.execute(
            "INSERT INTO outbox (id, cycle_id, programme_id, kind, recipient, subject,"
            " payload, created_at) VALUES ('cyc-r:1', 'cyc-r', 'prog-r', 'reminder', 'vaxa',"
            " 'notes due', %s, %s)",
            (Jsonb({"id": "cyc-r:1", "kind": "reminder"}), now),
        )
    pool = AsyncConnectionPool(fresh_database_url, min_size=1, max_size=2, open=False)
    await pool.open()
    try:
        dev = Settings(database_url=fresh_database_url, webhook_allow_http=True)
        acts = NotifyActivities(pool, dev)
        out = await ActivityEnvironment().run(acts.deliver_outbox, DeliverOutboxInput("cyc-r"))
        assert (out.refused, out.delivered, out.failed) == (1, 0, 0)  # no raise: no retry
        again = await ActivityEnvironment().run(acts.deliver_outbox, DeliverOutboxInput("cyc-r"))
        assert (again.refused, again.delivered, again.failed) == (0, 0, 0)
        assert receiver.received == []
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT refused_at IS NOT NULL, delivered_at, last_error, attempts"
                " FROM outbox_deliveries WHERE outbox_id = 'cyc-r:1'"
            )
            row = await cur.fetchone()
        assert row is not None
        refused, delivered, error, attempts = row
        assert refused and delivered is None and attempts == 1
        assert "refused" in error and "private" in error

        # on premises: the setting allows it; the request goes to the checked address
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM outbox_deliveries WHERE outbox_id = 'cyc-r:1'")
        onprem = Settings(
            database_url=fresh_database_url, webhook_allow_http=True, webhook_allow_private=True
        )
        out = await ActivityEnvironment().run(
            NotifyActivities(pool, onprem).deliver_outbox, DeliverOutboxInput("cyc-r")
        )
        assert (out.refused, out.delivered) == (0, 1)
        assert receiver.received == [{"host": f"localhost:{receiver.server_address[1]}"}]
    finally:
        await pool.close()
