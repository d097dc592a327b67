"""Outbox delivery: notifications the cycle produced, POSTed to the programme's webhook.

The outbox rows are projections (written with their event); this activity only
records delivery attempts in ``outbox_deliveries``. It delivers every
undelivered row of a cycle, so a row a dead webhook missed is retried by the
next delivery, and raises when any row failed so Temporal retries with
backoff. Delivery is at-least-once: receivers deduplicate on the ``id`` field
(also sent as the ``Idempotency-Key`` header).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

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
                " WHERE o.cycle_id = %s AND d.delivered_at IS NULL"
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
                    resp = await http.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
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
