"""The demo loader resumes after an interrupted first load (issue 10: a second
`make run` after Ctrl-C during the demo load waited 612 s before printing the
demo keys). Real processes: `peerlearn api` and `peerlearn worker` against a
real PostgreSQL and Temporal; the loader is interrupted with SIGINT (Ctrl-C)
part way through the notes and then run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from service.demo import STALL_S, demo_data
from service.ports import free_port

REPO = Path(__file__).resolve().parent.parent
LOAD_ONCE = (
    "import sys; from pathlib import Path; from service.demo import load_once;"
    "print(load_once(sys.argv[1], Path(sys.argv[2]), sys.argv[3]), flush=True)"
)


def demo_note_count() -> int:
    return sum(len(m["notes"]) for c in demo_data()["cycles"] for m in c["meetings"])


def _start(env: dict[str, str], logs: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for what in ("api", "worker"):
        with open(logs / f"{what}.log", "ab") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "service.cli", what],
                    env=env,
                    cwd=REPO,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return procs


def _wait_until_up(url: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/health", timeout=3)
            return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise AssertionError(f"the API at {url} never answered")


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def api_url(
    temporal_env: WorkflowEnvironment, database_url: str, model_dir: Path, tmp_path_factory
) -> AsyncIterator[str]:
    logs = tmp_path_factory.mktemp("demo-resume")
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "PEERLEARN_TASK_QUEUE": f"demo-{uuid.uuid4().hex[:8]}",
        "PEERLEARN_MODEL_DIR": str(model_dir),
        "PEERLEARN_HOME": str(logs / "home"),
        "PEERLEARN_API_PORT": str(port),
        "PEERLEARN_MAIL_CATCHER_PORT": str(free_port()),
    }
    procs = _start(env, logs)
    url = f"http://127.0.0.1:{port}"
    _wait_until_up(url)
    try:
        yield url
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _notes(database_url: str) -> int:
    """Notes stored in the demo's live cycles (the imported history is apart)."""
    cycles = [c["id"] for c in demo_data()["cycles"]]
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM notes WHERE cycle_id = ANY(%s)", (cycles,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_load_interrupted_by_ctrl_c_resumes_with_the_same_keys(
    api_url: str, database_url: str, tmp_path: Path
) -> None:
    home = tmp_path / "state"
    home.mkdir()
    first = subprocess.Popen(
        [sys.executable, "-c", LOAD_ONCE, api_url, str(home), database_url],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 300
    while _notes(database_url) < 5 and time.monotonic() < deadline:
        assert first.poll() is None, first.communicate()[0]
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)  # Ctrl-C half way through the notes
    first.wait(60)
    interrupted_at = _notes(database_url)
    assert 5 <= interrupted_at < demo_note_count()
    partial = json.loads((home / "demo.json").read_text())
    assert partial["loaded_at"] is None and set(partial["keys"]) >= {"admin", "partner"}

    t0 = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-c", LOAD_ONCE, api_url, str(home), database_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    took = time.monotonic() - t0
    print(f"interrupted after {interrupted_at} notes; resumed load took {took:.0f}s")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "demo data resumed and loaded" in second.stdout
    done = json.loads((home / "demo.json").read_text())
    assert done["loaded_at"] and done["keys"] == partial["keys"]  # no new keys
    assert done["counts"]["notes"] == demo_note_count()
    assert _notes(database_url) == demo_note_count()  # nothing stored twice
    # statements that never come stop the wait after STALL_S, not after 600 s
    assert done["counts"]["notes_mined"] == demo_note_count() or took < 600 - STALL_S
    # a third start only shows the keys
    third = subprocess.run(
        [sys.executable, "-c", LOAD_ONCE, api_url, str(home), database_url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert third.returncode == 0 and partial["keys"]["admin"] in third.stdout
    assert "loaded" not in third.stdout
