"""The embedded stack for the bench scripts: ``peerlearn run`` in a scratch home.

Starts the real supervisor (PostgreSQL, Temporal dev server, one worker, the
API) on free loopback ports in its own state folder, so a bench never touches
a developer's ``.peerlearn`` and can ``kill -9`` each component by the pid the
supervisor records in ``run.json``. The converted embedding model is reused
from the checkout when it is there (no conversion per run).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from service.ports import free_port

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / ".peerlearn" / "models" / "multilingual-e5-small"


@dataclass
class Stack:
    home: Path
    api_port: int
    temporal_port: int
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.home / "run.json").read_text())
            return data
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def pid(self, component: str) -> int | None:
        st = self.state()
        if component == "postgres":
            return st.get("postgres")
        return st.get("children", {}).get(component)

    def start(self, timeout: float = 240.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        ui_port = free_port()
        self.env = {
            **os.environ,
            "PEERLEARN_HOME": str(self.home),
            "PEERLEARN_API_PORT": str(self.api_port),
            "PEERLEARN_TEMPORAL_PORT": str(self.temporal_port),
            "PEERLEARN_TEMPORAL_UI_PORT": str(ui_port),
            "PEERLEARN_MAIL_CATCHER_PORT": str(free_port()),
            "PEERLEARN_LOAD_DEMO": "false",
            # the benchmarks' webhook receivers listen on 127.0.0.1 over plain http
            "PEERLEARN_WEBHOOK_ALLOW_PRIVATE": "true",
            "PEERLEARN_WEBHOOK_ALLOW_HTTP": "true",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        for k in (
            "DATABASE_URL",
            "TEMPORAL_ADDRESS",
            "PEERLEARN_DATABASE_URL",
            "PEERLEARN_TEMPORAL_ADDRESS",
        ):
            self.env.pop(k, None)
        if MODEL.exists():
            self.env["PEERLEARN_MODEL_DIR"] = str(MODEL)
        log = open(self.home / "supervisor.log", "ab")  # noqa: SIM115 - lives with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "run", "--no-demo"],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"peerlearn run exited with {self.proc.returncode};"
                    f" see {self.home / 'supervisor.log'}"
                )
            if self.healthy():
                return
            time.sleep(0.5)
        raise RuntimeError(f"the stack did not become healthy in {timeout:.0f}s; see {self.home}")

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self, timeout: float = 120.0) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.healthy():
                return time.monotonic() - t0
            time.sleep(0.3)
        raise RuntimeError(f"not healthy again after {timeout:.0f}s")

    def database_url(self) -> str:
        url = self.state().get("database_url")
        if not url:
            raise RuntimeError("run.json has no database_url yet")
        return str(url)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def new_stack(keep: Path | None = None) -> Stack:
    (REPO / ".peerlearn").mkdir(exist_ok=True)
    home = keep or Path(tempfile.mkdtemp(prefix="bench-", dir=REPO / ".peerlearn"))
    return Stack(home=home, api_port=free_port(), temporal_port=free_port())
