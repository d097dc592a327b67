"""``peerlearn erase --note ID | --organisation ORG | --person NAME [--organisation ORG]``:
the right to erasure
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
    from api.mining import remine_themes
    from peerlearn import db, privacy
    from peerlearn.access import NotFound
    from peerlearn.mining import store
    from peerlearn.temporal import connect

    settings = get_settings()
    conninfo = db.database_url(settings)
    db.wait_for_database(conninfo)
    db.migrate(conninfo)
    pool = await db.open_pool(conninfo, min_size=1, max_size=1)
    runs: list[str] = []
    try:
        async with pool.connection() as conn, conn.transaction():
            done = await privacy.erase(
                conn, note_id=args.note, organisation=args.organisation, person=args.person,
                requested_by="cli", reason=args.reason,
            )  # fmt: skip
            await store.refresh_practices(conn, done.theme_ids)
        if done.theme_ids:
            try:
                client = await connect(settings)
            except (OSError, RuntimeError) as exc:
                print(f"Temporal not reachable ({exc}): the next scheduled re-mine"
                      " re-computes the themes", file=sys.stderr)  # fmt: skip
            else:
                runs = await remine_themes(
                    pool, client, settings, done.theme_ids, trigger="erasure"
                )
    except NotFound as exc:
        print(f"peerlearn erase: {exc}", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    print(f"erasure {done.id}: {len(done.note_ids)} note(s) and {len(done.writings)} other"
          f" writing(s) erased; {len(done.theme_ids)} theme(s) refreshed (their labels are"
          " withheld until the re-mine)")  # fmt: skip
    for run in runs:
        print(f"mining run {run} started (peerlearn mining / GET /v1/mining-runs/{run})")
    return 0


def _cmd(args: argparse.Namespace) -> int:
    if args.note is not None and (args.organisation or args.person):
        print("peerlearn erase: --note goes alone", file=sys.stderr)
        return 2
    if not (args.note or args.organisation or args.person):
        print("peerlearn erase: give --note, --organisation or --person", file=sys.stderr)
        return 2
    return asyncio.run(_erase(args))


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "erase",
        help="erase a note, or all an organisation or a named person wrote (right to erasure)",
    )
    p.add_argument("--note", help="note id")
    p.add_argument(
        "--organisation", help="organisation id: every note it wrote (with --person: its person's)"
    )
    p.add_argument(
        "--person", help="a named person (name or e-mail, matched ignoring case): every note"
        " signed by them, also under the other half of a matching programme contact",
    )  # fmt: skip
    p.add_argument("--reason", default=None, help="recorded with the erasure (no text of notes)")
    p.set_defaults(func=_cmd)
