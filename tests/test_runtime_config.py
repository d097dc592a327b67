"""Bad configuration gives one line that says what is wrong and how to fix it
(the real CLI, as a subprocess), never a traceback, and starts nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.ports import free_port

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(tmp_path: Path, model_dir: Path) -> Iterator[dict[str, str]]:
    home = REPO / ".peerlearn" / "test-config" / uuid.uuid4().hex[:8]
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PEERLEARN_") and k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")
    }
    base.update(
        PEERLEARN_HOME=str(home),
        PEERLEARN_API_PORT=str(free_port()),
        PEERLEARN_TEMPORAL_PORT=str(free_port()),
        PEERLEARN_TEMPORAL_UI_PORT=str(free_port()),
        PEERLEARN_MAIL_CATCHER_PORT=str(free_port()),
        PEERLEARN_MODEL_DIR=str(model_dir),
        PEERLEARN_LOAD_DEMO="false",
    )
    yield base
    import shutil

    shutil.rmtree(home, ignore_errors=True)


def run_cli(env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    cp = subprocess.run(
        [sys.executable, "-m", "service.cli", "run", "--no-demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return cp.returncode, cp.stdout + cp.stderr


def assert_one_line(out: str, *needles: str) -> str:
    lines = [line for line in out.splitlines() if line.strip()]
    assert "Traceback" not in out, out
    assert len(lines) == 1, out
    line = lines[0]
    assert line.startswith("peerlearn run: error: "), line
    for n in needles:
        assert n in line, line
    return line


def test_api_port_in_use(env: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env["PEERLEARN_API_PORT"] = str(port)
        rc, out = run_cli(env)
    assert rc == 1
    assert_one_line(out, f"port {port} (API) is already in use", "PEERLEARN_API_PORT")


def test_temporal_port_in_use(env: dict[str, str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env["PEERLEARN_TEMPORAL_UI_PORT"] = str(port)
        rc, out = run_cli(env)
    assert rc == 1
    assert_one_line(out, f"port {port} (Temporal Web UI)", "PEERLEARN_TEMPORAL_UI_PORT")


def test_unreachable_database_url(env: dict[str, str]) -> None:
    env["DATABASE_URL"] = f"postgresql://peer:secret@127.0.0.1:{free_port()}/nowhere"
    rc, out = run_cli(env)
    assert rc == 1
    line = assert_one_line(out, "cannot connect to PostgreSQL", "DATABASE_URL")
    assert "secret" not in line  # the password is redacted


def test_missing_model(env: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "no-model-here"
    empty.mkdir()
    env["PEERLEARN_MODEL_DIR"] = str(empty)
    rc, out = run_cli(env)
    assert rc == 1
    assert_one_line(out, "no prepared model", str(empty), "peerlearn model prepare")


def test_unreachable_temporal_address(env: dict[str, str]) -> None:
    env["TEMPORAL_ADDRESS"] = f"127.0.0.1:{free_port()}"
    rc, out = run_cli(env)
    assert rc == 1
    assert_one_line(out, "cannot reach Temporal", "TEMPORAL_ADDRESS")


def test_second_supervisor_on_same_home_is_refused(env: dict[str, str]) -> None:
    import fcntl

    home = Path(env["PEERLEARN_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "run.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        rc, out = run_cli(env)
    assert rc == 1
    assert_one_line(out, "another `peerlearn run` is using", "PEERLEARN_HOME")
