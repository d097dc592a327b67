"""``peerlearn erase --note ID | --organisation ORG``: the right to erasure
from the command line (the same :func:`peerlearn.privacy.erase` as
``POST /v1/erasures``): the notes' keys are destroyed (their texts in the
event log become unreadable), NoteErased tombstones are appended, and the
read models, statements, embeddings, originals and report copies are
deleted; practices of the affected themes are re-ranked."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from peerlearn.settings import get_settings


async def _erase(args: argparse.Namespace) -> int:
    from peerlearn import db, privacy
    from peerlearn.access import NotFound
    from peerlearn.mining import store

    conninfo = db.database_url(get_settings())
    db.wait_for_database(conninfo)
    db.migrate(conninfo)
    pool = await db.open_pool(conninfo, min_size=1, max_size=1)
    try:
        async with pool.connection() as conn, conn.transaction():
            done = await privacy.erase(
                conn, note_id=args.note, organisation=args.organisation,
                requested_by="cli", reason=args.reason,
            )  # fmt: skip
            await store.refresh_practices(conn, done.theme_ids)
    except NotFound as exc:
        print(f"peerlearn erase: {exc}", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    print(f"erasure {done.id}: {len(done.note_ids)} note(s) erased; {len(done.theme_ids)} theme(s)"
          " refreshed (labels are recomputed by the next re-mine)")  # fmt: skip
    return 0


def _cmd(args: argparse.Namespace) -> int:
    return asyncio.run(_erase(args))


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "erase", help="erase one note or everything an organisation wrote (right to erasure)"
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--note", help="note id")
    g.add_argument("--organisation", help="organisation id: every note it wrote")
    p.add_argument("--reason", default=None, help="recorded with the erasure (no text of notes)")
    p.set_defaults(func=_cmd)
