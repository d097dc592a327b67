"""Outbox delivery: notifications the cycle produced, POSTed to the programme's webhook.

The outbox rows are projections (written with their event); this activity only
records delivery attempts in ``outbox_deliveries``. It delivers every
undelivered row of a cycle, so a row a dead webhook missed is retried by the
next delivery, and raises when any row failed so Temporal retries with
backoff. Delivery is at-least-once: receivers deduplicate on the ``id`` field
(also sent as the ``Idempotency-Key`` header).

Before each POST the target is checked again (:mod:`peerlearn.outbound`: the
name resolved now, every address allowed) and the request goes to the checked
address. A refused target is recorded in ``outbox_deliveries.refused_at`` with
the reason and is final: it does not fail the activity, so nothing retries it.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from peerlearn import outbound
from peerlearn.settings import Settings
from workflows.types import DELIVER_OUTBOX, DeliverOutboxInput, DeliverOutboxOutput

USER_AGENT = "peerlearn-webhooks/1"


async def signature_headers(
    pool: AsyncConnectionPool, programme_id: str, body: bytes
) -> dict[str, str]:
    """Headers that authenticate a delivery: the per-programme HMAC signature
    (``peerlearn/signing.py``; the secret is created on first use)."""
    from peerlearn import keys, signing

    async with pool.connection() as conn:
        secret = await keys.programme_secret_async(conn, programme_id)
    return {signing.SIGNATURE_HEADER: signing.sign_payload(secret, body)}


class NotifyActivities:
    def __init__(
        self, pool: AsyncConnectionPool, settings: Settings, *, timeout: float = 10.0
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.timeout = timeout

    async def _pending(self, cycle_id: str) -> list[dict[str, Any]]:
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT p.*, o.id AS outbox_id, o.payload AS outbox_payload FROM outbox o"
                " JOIN programmes p ON p.id = o.programme_id"
                " LEFT JOIN outbox_deliveries d ON d.outbox_id = o.id"
                " WHERE o.cycle_id = %s AND d.delivered_at IS NULL AND d.refused_at IS NULL"
                " ORDER BY o.created_at, o.id",
                (cycle_id,),
            )
            return list(await cur.fetchall())

    async def _record(
        self, outbox_id: str, *, ok: bool, status: int | None, error: str | None
    ) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO outbox_deliveries (outbox_id, attempts, delivered_at, last_status,"
                " last_error, updated_at)"
                " VALUES (%s, 1, CASE WHEN %s THEN now() END, %s, %s, now())"
                " ON CONFLICT (outbox_id) DO UPDATE SET attempts = outbox_deliveries.attempts + 1,"
                " delivered_at = COALESCE(outbox_deliveries.delivered_at, EXCLUDED.delivered_at),"
                " last_status = EXCLUDED.last_status, last_error = EXCLUDED.last_error,"
                " updated_at = now()",
                (outbox_id, ok, status, error),
            )

    async def _refuse(self, outbox_id: str, reason: str) -> None:
        """Record a delivery the SSRF rule refused: final, never retried."""
        async with self.pool.connection() as conn:
            await conn.execute(
                "INSERT INTO outbox_deliveries (outbox_id, attempts, refused_at, last_error,"
                " updated_at) VALUES (%s, 1, now(), %s, now())"
                " ON CONFLICT (outbox_id) DO UPDATE SET attempts = outbox_deliveries.attempts + 1,"
                " refused_at = now(), last_error = EXCLUDED.last_error, updated_at = now()",
                (outbox_id, reason[:500]),
            )

    async def _target(self, url: str) -> outbound.Target:
        """The checked address to post to (resolved now, not when the URL was saved)."""
        target = await outbound.check_webhook_url(
            url,
            allow_private=self.settings.webhook_allow_private,
            allow_http=self.settings.webhook_allow_http,
            require_resolution=True,
        )
        assert target is not None  # require_resolution: an unresolved name raises
        return target

    @staticmethod
    async def _post(
        http: httpx.AsyncClient, target: outbound.Target, body: bytes, headers: dict[str, str]
    ) -> httpx.Response:
        """POST to the addresses just checked, in resolver order (no second
        lookup that DNS could rebind); the name still goes in Host and in TLS
        (SNI and the certificate check). The next address only when one refuses
        the connection."""
        for i, address in enumerate(target.addresses):
            try:
                return await http.post(
                    target.pinned_url(address),
                    content=body,
                    headers={**headers, "Host": target.host_header},
                    extensions={"sni_hostname": target.host},
                )
            except httpx.ConnectError:
                if i == len(target.addresses) - 1:
                    raise
        raise httpx.ConnectError(f"no address for {target.host!r}")

    @activity.defn(name=DELIVER_OUTBOX)
    async def deliver_outbox(self, inp: DeliverOutboxInput) -> DeliverOutboxOutput:
        out = DeliverOutboxOutput()
        rows = await self._pending(inp.cycle_id)
        errors: list[str] = []
        async with httpx.AsyncClient(
            timeout=self.timeout, headers={"User-Agent": USER_AGENT}
        ) as http:
            for row in rows:
                url = row.get("webhook_url")
                if not url:
                    out.skipped_no_webhook += 1
                    continue
                body = json.dumps(row["outbox_payload"], sort_keys=True).encode()
                headers = {
                    "Content-Type": "application/json",
                    "Idempotency-Key": row["outbox_id"],
                    **await signature_headers(self.pool, row["id"], body),
                }
                try:
                    target = await self._target(url)
                except outbound.WebhookRefused as exc:
                    activity.logger.warning("webhook %s refused: %s", row["outbox_id"], exc)
                    await self._refuse(row["outbox_id"], f"refused: {exc.message}")
                    out.refused += 1
                    continue
                try:
                    resp = await self._post(http, target, body, headers)
                except (httpx.HTTPError, OSError, TimeoutError) as exc:
                    await self._record(
                        row["outbox_id"], ok=False, status=None, error=repr(exc)[:500]
                    )
                    errors.append(f"{row['outbox_id']}: {exc!r}")
                    out.failed += 1
                    continue
                ok = 200 <= resp.status_code < 300
                await self._record(
                    row["outbox_id"],
                    ok=ok,
                    status=resp.status_code,
                    error=None if ok else resp.text[:500],
                )
                if ok:
                    out.delivered += 1
                else:
                    out.failed += 1
                    errors.append(f"{row['outbox_id']}: HTTP {resp.status_code}")
        if errors:
            raise ApplicationError(
                f"{len(errors)} of {len(rows)} webhook deliveries failed: " + "; ".join(errors[:3]),
                type="WebhookDeliveryFailed",
            )
        return out
