"""The embedded mail catcher: a real SMTP server (aiosmtpd) that keeps what it receives.

``peerlearn run`` starts it on 127.0.0.1 when ``PEERLEARN_SMTP_HOST`` is unset,
and the worker's default SMTP address is that port, so a new user sees every
message a cycle sends (``GET /v1/mail``, the analyst page) without configuring
a mail server. The tests use the same class as their SMTP server.

Every accepted SMTP transaction becomes one ``caught_mail`` row (raw bytes,
envelope, Message-ID, subject). A message re-sent after a worker crash is a
second row with the same Message-ID: the catcher does not hide what a real
receiver would see.
"""

from __future__ import annotations

import logging
from email import message_from_bytes
from email.header import decode_header, make_header
from email.policy import default as default_policy
from typing import Any

import psycopg
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

log = logging.getLogger("peerlearn.mailcatcher")

MAX_MESSAGE_BYTES = 10_000_000


def _header(value: str | None) -> str:
    if not value:
        return ""
    return str(make_header(decode_header(value)))


def store(conn: psycopg.Connection[Any], mail_from: str, rcpt_to: list[str], raw: bytes) -> int:
    """Keep one received message; returns its row id."""
    msg = message_from_bytes(raw, policy=default_policy)
    message_id = (msg.get("Message-ID") or "").strip() or None
    subject = _header(msg.get("Subject"))
    row = conn.execute(
        "INSERT INTO caught_mail (message_id, mail_from, rcpt_to, subject, raw)"
        " VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (message_id, mail_from, Jsonb(rcpt_to), subject, raw),
    ).fetchone()
    assert row is not None
    return int(row[0])


class CatchingHandler:
    """aiosmtpd handler: accept every recipient, store every message."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.received = 0
        self._conn: psycopg.Connection[Any] | None = None  # reused: one connect per message is slow

    def _store(self, mail_from: str, rcpt_to: list[str], raw: bytes) -> int:
        """Insert with the kept connection; one reconnect if the server dropped it."""
        for attempt in (1, 2):
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self.conninfo, autocommit=True)
            try:
                return store(self._conn, mail_from, rcpt_to, raw)
            except psycopg.OperationalError:
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if raw is None:
            return "554 no message"
        rcpts = [str(r) for r in envelope.rcpt_tos]
        try:
            # a short synchronous insert; the catcher's loop runs in its own thread
            self._store(str(envelope.mail_from or ""), rcpts, raw)
        except psycopg.Error as exc:
            log.warning("mail catcher could not store a message: %s", exc)
            return "451 could not store the message, try again later"
        self.received += 1
        return "250 Message accepted for delivery"


class MailCatcher:
    """Start/stop an aiosmtpd server in a background thread (its own event loop)."""

    def __init__(self, conninfo: str, *, host: str = "127.0.0.1", port: int = 8025) -> None:
        self.conninfo = conninfo
        self.host = host
        self.port = port
        self.handler = CatchingHandler(conninfo)
        self._controller: Controller | None = None

    def start(self) -> MailCatcher:
        self._controller = Controller(
            self.handler,
            hostname=self.host,
            port=self.port,
            server_hostname="peerlearn-mailcatcher",
            data_size_limit=MAX_MESSAGE_BYTES,
            decode_data=False,
            enable_SMTPUTF8=True,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        self.handler.close()

    def __enter__(self) -> MailCatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------- reading (GET /v1/mail)


def summarise(raw: bytes) -> dict[str, Any]:
    """The parts of a caught message a person reads: headers, text, calendar."""
    msg = message_from_bytes(raw, policy=default_policy)
    text = ""
    calendar: str | None = None
    calendar_method: str | None = None
    attachments: list[str] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        filename = part.get_filename()
        if filename:
            attachments.append(filename)
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if ctype == "text/plain" and not filename and not text:
            text = data.decode(part.get_content_charset() or "utf-8", "replace")
        elif ctype == "text/calendar" and calendar is None:
            calendar = data.decode(part.get_content_charset() or "utf-8", "replace")
            calendar_method = part.get_param("method")  # type: ignore[assignment]
    return {
        "from": _header(msg.get("From")),
        "to": _header(msg.get("To")),
        "date": msg.get("Date"),
        "language": msg.get("Content-Language"),
        "kind": msg.get("X-Peerlearn-Kind"),
        "outbox_id": msg.get("X-Peerlearn-Outbox-Id"),
        "text": text,
        "calendar": calendar,
        "calendar_method": calendar_method,
        "attachments": attachments,
    }


_LIST_SQL = """
SELECT c.id, c.message_id, c.mail_from, c.rcpt_to, c.subject, c.received_at, c.raw,
       count(*) OVER (PARTITION BY c.message_id) AS copies
FROM caught_mail c
WHERE (%(before)s::bigint IS NULL OR c.id < %(before)s)
ORDER BY c.id DESC
LIMIT %(limit)s
"""


async def list_caught(
    conn: psycopg.AsyncConnection[Any], *, limit: int = 50, before: int | None = None
) -> list[dict[str, Any]]:
    """Newest first; ``copies`` counts the receipts sharing the Message-ID
    (more than one: a re-send after a crash, which receivers deduplicate)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_LIST_SQL, {"limit": limit, "before": before})
        rows = await cur.fetchall()
    out = []
    for r in rows:
        s = summarise(bytes(r.pop("raw")))
        out.append({**r, "kind": s["kind"], "language": s["language"], "to": s["to"],
                    "calendar_method": s["calendar_method"]})  # fmt: skip
    return out


async def caught(conn: psycopg.AsyncConnection[Any], mail_id: int) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "SELECT id, message_id, mail_from, rcpt_to, subject, received_at, raw,"
            " (SELECT count(*) FROM caught_mail d WHERE d.message_id = c.message_id) AS copies"
            " FROM caught_mail c WHERE id = %s",
            (mail_id,),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return {**row, **summarise(bytes(row.pop("raw")))}
