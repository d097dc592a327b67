"""The CLI outside a project: commands that need the state folder refuse in one
line and start nothing (issue 10: `peerlearn keys list` used to create
./.peerlearn and leave an empty PostgreSQL running)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _postgres_pids_under(path: Path) -> list[int]:
    """Live postgres processes whose command line names a folder under ``path``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "postgres" in cmd and str(path) in cmd:
            found.append(int(proc.name))
    return found


def _run_outside(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PEERLEARN_HOME", "DATABASE_URL", "PEERLEARN_DATABASE_URL")
    }
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("keys", "list"),
        ("keys", "create", "--role", "admin"),
        ("mining", "run"),
        ("projections", "rebuild"),
        ("worker",),
        ("api",),
    ],
)
def test_state_commands_refuse_outside_a_state_folder(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    out = _run_outside(tmp_path, *args)
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "no peerlearn state folder" in lines[0] and "Nothing was started" in lines[0]
    assert str(tmp_path) in lines[0]  # says where it looked
    assert list(tmp_path.iterdir()) == [], "created files in the working folder"
    assert _postgres_pids_under(tmp_path) == []


def test_peerlearn_home_without_a_database_is_refused_too(tmp_path: Path) -> None:
    """A PEERLEARN_HOME that exists but never held a database (say, only a model)
    is not a state folder either: nothing is initialised in it."""
    home = tmp_path / "state"
    (home / "models").mkdir(parents=True)
    env = {**os.environ, "PEERLEARN_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("DATABASE_URL", None)
    env.pop("PEERLEARN_DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "list"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.returncode == 2 and "no peerlearn state folder" in out.stderr
    assert not (home / "pg").exists()
    assert _postgres_pids_under(tmp_path) == []


def test_commands_without_state_still_run_anywhere(tmp_path: Path) -> None:
    out = _run_outside(tmp_path, "keys", "--help")
    assert out.returncode == 0 and "create" in out.stdout
    assert list(tmp_path.iterdir()) == []
