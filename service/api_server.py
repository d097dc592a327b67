"""The API process: ``peerlearn api`` runs uvicorn on ``api.main:create_app``.

The factory form lets every process (and every replica behind a load
balancer) build its app from its own environment.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from peerlearn.settings import get_settings


def _cmd(args: argparse.Namespace) -> int:
    import uvicorn

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    settings = get_settings()
    uvicorn.run(
        "api.main:create_served_app",  # loads the model before the port opens
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        workers=args.workers,
        log_level=os.environ.get("PEERLEARN_LOG_LEVEL", "warning").lower(),
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("api", help="serve the HTTP API (uvicorn)")
    p.add_argument("--host", help="bind address (default PEERLEARN_API_HOST)")
    p.add_argument("--port", type=int, help="port (default PEERLEARN_API_PORT)")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.set_defaults(func=_cmd)
