"""Outbox delivery by e-mail, next to the webhook.

The cycle workflow calls one activity, ``deliver_outbox``, whenever an append
produced outbox rows. :class:`OutboxActivities` registers under that name and
does both deliveries, so the workflow did not change: first the programme's
webhook (:class:`activities.notify.NotifyActivities`, unchanged), then the
e-mails (:mod:`peerlearn.mail` plans them). Each e-mail is recorded as sent
only after the SMTP server accepted it; a crash in between re-sends it with
the same Message-ID on the next delivery (at least once, deduplicable).

With no SMTP server configured and the embedded catcher not running (a worker
started without ``peerlearn run``), mail waits in the outbox like a row with no
webhook: nothing fails, the next delivery run tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import smtplib
import time
from dataclasses import dataclass, field

from psycopg_pool import AsyncConnectionPool
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notify import NotifyActivities
from peerlearn import mail
from peerlearn.settings import Settings
from workflows.types import DELIVER_OUTBOX, DeliverOutboxInput, DeliverOutboxOutput

log = logging.getLogger("peerlearn.mail")


@dataclass
class MailResult:
    sent: int = 0
    failed: int = 0
    rows_done: int = 0
    waiting_for_server: bool = False
    incomplete: bool = False  # the time budget ran out: the rest goes on the next attempt
    errors: list[str] = field(default_factory=list)


class MailActivities:
    """Sends the e-mails of a cycle's undelivered outbox rows over SMTP."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        settings: Settings,
        *,
        timeout: float = 10.0,
        budget_s: float = 40.0,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.timeout = timeout
        # Stop starting new messages after this long: the workflow gives the
        # delivery activity 60 s, and a timed-out attempt would leave the message
        # in flight unrecorded (sent twice). Progress is recorded per message.
        self.budget_s = budget_s

    async def _sent(self, planned: mail.PlannedMail) -> None:
        """Record one accepted e-mail (tests override this to simulate a crash
        between the SMTP transaction and the record)."""
        async with self.pool.connection() as conn:
            await mail.record_attempt(conn, planned, sent=True, error=None)

    async def _failed(self, planned: mail.PlannedMail, error: str) -> None:
        async with self.pool.connection() as conn:
            await mail.record_attempt(conn, planned, sent=False, error=error[:500])

    async def deliver_mail(self, cycle_id: str) -> MailResult:
        """Send every unsent e-mail of the cycle's outbox rows; never raises for
        a refused recipient (recorded, retried next run), raises ``OSError`` /
        ``SMTPException`` when the server itself is unreachable."""
        res = MailResult()
        async with self.pool.connection() as conn:
            rows = await mail.pending_rows(conn, cycle_id)
            if not rows:
                return res
            await mail.prepare_rows(conn, rows)
            ctx = await mail.load_cycle_context(conn, cycle_id)
            done = await mail.sent_keys(conn, [r["id"] for r in rows])
        if ctx is None:
            return res
        plans = {r["id"]: mail.plan_row(r, ctx, self.settings) for r in rows}
        todo = [
            p
            for ps in plans.values()
            for p in ps
            if (p.outbox_id, p.contact.email.lower(), p.meeting_id) not in done
        ]
        open_rows: set[str] = set()  # refused or not reached: not done
        if todo:
            try:
                await self._send_all(todo, res, open_rows)
            except mail.MailServerUnavailable as exc:
                log.info("mail waits: %s", exc)
                res.waiting_for_server = True
                return res
        async with self.pool.connection() as conn:
            for oid, ps in plans.items():
                if oid not in open_rows:
                    await mail.mark_row_done(conn, oid, len(ps))
                    res.rows_done += 1
        return res

    async def _send_all(
        self, todo: list[mail.PlannedMail], res: MailResult, open_rows: set[str]
    ) -> None:
        """One SMTP session for the run; each message recorded right after it is accepted."""
        deadline = time.monotonic() + self.budget_s
        smtp = await asyncio.to_thread(mail.open_smtp, self.settings, timeout=self.timeout)
        sender = mail.envelope_sender(self.settings)
        try:
            for i, p in enumerate(todo):
                if time.monotonic() > deadline:
                    res.incomplete = True
                    open_rows.update(q.outbox_id for q in todo[i:])
                    break
                try:
                    await asyncio.to_thread(smtp.send_message, p.message, sender, [p.contact.email])
                except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError) as exc:
                    await self._failed(p, repr(exc))
                    open_rows.add(p.outbox_id)
                    res.failed += 1
                    res.errors.append(f"{p.message_id} to {p.contact.email}: {exc!r}")
                    continue
                await self._sent(p)
                res.sent += 1
        finally:
            # closing a session the server already dropped is not worth raising
            with contextlib.suppress(smtplib.SMTPException, OSError):
                await asyncio.to_thread(smtp.quit)


class OutboxActivities:
    """``deliver_outbox``: the webhook, then e-mail. Raises (so Temporal retries
    with backoff) when either failed; what succeeded is recorded and not redone."""

    def __init__(self, pool: AsyncConnectionPool, settings: Settings, *, timeout: float = 10.0):
        self.webhooks = NotifyActivities(pool, settings, timeout=timeout)
        self.mail = MailActivities(pool, settings, timeout=timeout)

    @activity.defn(name=DELIVER_OUTBOX)
    async def deliver_outbox(self, inp: DeliverOutboxInput) -> DeliverOutboxOutput:
        webhook_error: ApplicationError | None = None
        try:
            out = await self.webhooks.deliver_outbox(inp)
        except ApplicationError as exc:
            webhook_error, out = exc, DeliverOutboxOutput()
        try:
            res = await self.mail.deliver_mail(inp.cycle_id)
        except (smtplib.SMTPException, OSError) as exc:
            raise ApplicationError(
                f"SMTP server {self.mail.settings.smtp_address} failed: {exc!r}",
                type="MailDeliveryFailed",
            ) from exc
        if res.sent or res.failed:
            log.info("cycle %s: %d e-mails sent, %d refused", inp.cycle_id, res.sent, res.failed)
        if webhook_error is not None:
            raise webhook_error
        if res.failed:
            raise ApplicationError(
                f"{res.failed} e-mails refused: " + "; ".join(res.errors[:3]),
                type="MailDeliveryFailed",
            )
        if res.incomplete:  # retried by Temporal in seconds; it goes on where this stopped
            raise ApplicationError(
                f"{res.sent} e-mails sent, more to send", type="MailDeliveryIncomplete"
            )
        return out
