"""``peerlearn import --file F``: import the notes of past cycles (JSONL or CSV).

The same code path as ``POST /v1/imports`` (:func:`api.routers.imports.run_import`)
with the system principal: every line validated first, one transaction,
re-importing changes nothing, then a ThemeMining run per programme when
something was written. Bad lines are printed one per line with their numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from peerlearn.settings import get_settings


def _read(path: Path, limit: int) -> bytes | None:
    if not path.is_file():
        print(f"peerlearn import: no such file {path}", file=sys.stderr)
        return None
    if path.stat().st_size > limit:
        print(
            f"peerlearn import: {path} is larger than {limit} bytes (PEERLEARN_MAX_IMPORT_BYTES)",
            file=sys.stderr,
        )
        return None
    return path.read_bytes()


async def _import(args: argparse.Namespace, data: bytes) -> int:
    from api.problems import Problem
    from api.routers.imports import run_import
    from peerlearn import db
    from peerlearn.access import SYSTEM
    from peerlearn.temporal import connect

    settings = get_settings()
    path: Path = args.file
    conninfo = db.database_url(settings)
    db.wait_for_database(conninfo)
    db.migrate(conninfo)
    client = None
    if not args.no_mining:
        try:
            client = await connect(settings)
        except (OSError, RuntimeError) as exc:
            print(f"Temporal not reachable ({exc}); importing without mining", file=sys.stderr)
    pool = await db.open_pool(conninfo, min_size=1, max_size=2)
    try:
        out = await run_import(
            pool,
            client,
            settings,
            data,
            principal=SYSTEM,
            filename=path.name,
            mine=client is not None,
        )
    except Problem as exc:
        errors = exc.extra.get("errors") or []
        for e in errors:
            print(f"{path}:{e['line']}: {e['reason']}", file=sys.stderr)
        if not errors:
            print(f"peerlearn import: {exc.detail}", file=sys.stderr)
        print("nothing was imported", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    created = ", ".join(f"{v} {k}" for k, v in out["created"].items())
    if out["changed"]:
        print(f"import {out['import_id']}: {out['lines']} lines; created {created}")
    else:
        print(f"import {out['import_id']}: {out['lines']} lines; already imported, nothing changed")
    for run in out["mining_runs"]:
        print(f"mining run {run} started (peerlearn mining / GET /v1/mining-runs/{run})")
    return 0


def _cmd(args: argparse.Namespace) -> int:
    data = _read(args.file, get_settings().max_import_bytes)
    if data is None:
        return 2

    async def main() -> int:
        code = await _import(args, data)
        await asyncio.sleep(0.3)  # sdk-python#300
        return code

    return asyncio.run(main())


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "import", help="import the notes of past cycles from a JSONL or CSV file, then mine"
    )
    p.add_argument("--file", required=True, type=Path, help="JSONL (.jsonl) or CSV (.csv) file")
    p.add_argument("--no-mining", action="store_true", help="write the notes only; mine later")
    p.set_defaults(func=_cmd)
