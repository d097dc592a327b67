"""The ``peerlearn`` command line.

Each subcommand lives next to the code it drives and exposes
``register(subparsers)``; this module only assembles them. Commands that use
the Temporal client exit through ``os._exit`` after flushing, which sidesteps
the interpreter-exit crash of short temporalio scripts (sdk-python#300).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Modules that contribute subcommands, each with ``register(subparsers)``.
COMMAND_MODULES = [
    "nlp.cli",  # mine
    "peerlearn.keys",  # keys create|list|revoke|webhook-secret
    "service.mining_schedule",  # mining run|schedule
    "service.projections_cli",  # projections rebuild
    # runtime (keep last: `model prepare` is registered here only if nothing above did)
    "service.runtime",  # run, model prepare
    "service.worker",  # worker
    "service.api_server",  # api
    "service.demo",  # demo load
    "service.import_cli",  # import --file F
    "service.erase_cli",  # erase --note ID | --organisation ORG
    "peerlearn.legacy_seal",  # seal-legacy
]

# Commands that work on an existing state folder (its embedded PostgreSQL) unless
# DATABASE_URL points elsewhere. Run anywhere else they would create ./.peerlearn
# and start an empty PostgreSQL that outlives them, so they refuse instead.
# `run` creates the state folder, `model prepare` fills it, `mine` and `demo load`
# need none (files / the HTTP API).
NEEDS_STATE = frozenset(
    {"keys", "mining", "projections", "worker", "api", "import", "erase", "seal-legacy"}
)


def state_problem(command: str) -> str | None:
    """Why ``command`` cannot run here (one line), or None when it can.

    Checked before any command code runs, so a refusal starts nothing and
    creates nothing.
    """
    if command not in NEEDS_STATE:
        return None
    from peerlearn.settings import get_settings

    settings = get_settings()
    if not settings.embedded_postgres:
        return None
    pg_dir = settings.pg_dir.resolve()
    if (pg_dir / "PG_VERSION").is_file():
        return None
    return (
        f"no peerlearn state folder here ({pg_dir.parent} holds no database); "
        "run it in the project folder where `make run` ran, or set PEERLEARN_HOME "
        "to the state folder, or DATABASE_URL to an external PostgreSQL. Nothing was started."
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peerlearn",
        description="Peer-learning cycles on Temporal and a multilingual lessons-learnt miner.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet; everything else is a real error
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        problem = state_problem(args.command)
        if problem is not None:
            print(f"peerlearn {args.command}: {problem}", file=sys.stderr)
            code = 2
        else:
            code = int(args.func(args) or 0)
    except KeyboardInterrupt:
        code = 130
    except Exception as exc:  # one line, not a traceback, for configuration errors
        if os.environ.get("PEERLEARN_DEBUG"):
            raise
        print(f"peerlearn {args.command}: error: {exc}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
