"""``peerlearn projections rebuild``: replay the whole event log into fresh
read-model tables and swap them in (appends wait meanwhile)."""

from __future__ import annotations

import argparse
from typing import Any


def _rebuild(args: argparse.Namespace) -> int:
    from peerlearn import db, projections
    from peerlearn.settings import get_settings

    conninfo = db.database_url(get_settings())
    db.wait_for_database(conninfo)
    db.migrate(conninfo)
    counts = projections.rebuild_projections(conninfo)
    print("rebuilt from the event log: " + ", ".join(f"{t} {n}" for t, n in counts.items()))
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("projections", help="Read models derived from the event log")
    psub = p.add_subparsers(dest="projections_command", required=True, metavar="ACTION")
    r = psub.add_parser("rebuild", help="Replay every event into fresh read-model tables")
    r.set_defaults(func=_rebuild)
