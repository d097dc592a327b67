"""Which TCP ports a server may take.

``free_port`` exists because the usual trick, ``bind(0)`` and read the port
back, races: that port comes from the kernel's *ephemeral* range, the same
range every outgoing connection takes its local port from, and the Temporal
dev server alone opens a dozen internal listeners on ports from it while it
starts. Between the check and uvicorn's ``bind`` one of them can take the port
(CI saw the API fail with ``EADDRINUSE`` that way). A port below the ephemeral
range is never handed out by the kernel, so once it binds free it stays free
until someone asks for it by number.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000
_given: set[int] = set()


def port_in_use(host: str, port: int) -> bool:
    """True when a listener could not bind ``host:port`` now (SO_REUSEADDR, as uvicorn)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A free port below the ephemeral range, never the same one twice in a process."""
    high = _ephemeral_low()
    low = _LOWEST if high - _LOWEST > 1_000 else 1_024
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(low, high)
        if port not in _given and not port_in_use(host, port):
            _given.add(port)
            return port
    raise RuntimeError(f"no free port between {low} and {high} on {host}")
