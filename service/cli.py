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
]


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
