"""The soak's processes, as ``make demo`` runs them, each one its own process that can be hurt.

An embedded Postgres of the soak's own (``<pgdata root>/<name>``, restarted by the soak), the
fake DashScope (its own process, a secret API key, a fault mix), the demo venue and its DWS (the
demo's own setup, ``zqyy demo --no-serve``), the Dagster daemon (``daemon_harness``: killed and
restarted alone) and webserver, and the API as uvicorn with two workers (one killed with
SIGKILL; uvicorn's supervisor starts another). Every log goes to a file in ``workdir``, which
the soak greps for secrets at the end.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import requests

from api.serving import UVICORN_OPTIONS
from zqyy_assets.core import db, embedded_pg
from zqyy_assets.testing.daemon_harness import PROJECT_ROOT, DaemonHarness, write_dagster_home
from zqyy_assets.testing.fake_dashscope import FakeAdmin, demo_env

BIN = Path(sys.executable).parent
# Run monitoring on the soak's minutes: a run the killed daemon left STARTING is failed after 60 s
# (not 180 s), checked every 5 s (not 30 s).
RUN_MONITORING = {"start_timeout_seconds": 60, "poll_interval_seconds": 5}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.1,
    error: type[Exception] = RuntimeError,
) -> Any:
    """Poll ``condition`` until it is truthy; ``error`` naming ``what`` after ``timeout`` s
    (tests pass AssertionError, so a timeout fails the test rather than erroring it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise error(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.RequestException:
        return False


def children(pid: int) -> list[int]:
    """The direct children of a process (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


class Stack:
    """The whole system on one machine. ``start()`` brings it up; ``stop()`` ends all of it."""

    def __init__(self, workdir: Path, *, pg_name: str = "soak", sites: int = 1, days: int = 30, seed: int = 7) -> None:
        self.workdir = workdir
        self.pg_name = pg_name
        self.sites, self.days, self.seed = sites, days, seed
        self.api_key = "sk-soak-" + secrets.token_hex(16)  # the upstream's key: must never reach a log
        self.procs: dict[str, subprocess.Popen] = {}
        self._logs: list[Any] = []
        self.harness: DaemonHarness | None = None
        self.daemon: subprocess.Popen | None = None
        self.database_url = ""
        self.fake_url = ""
        self.api_port = self.dagster_port = 0
        self.env: dict[str, str] = {}

    # ------------------------------------------------------------------------------------ up

    def start(self, *, llm_env: dict[str, str], api_env: dict[str, str]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        server = embedded_pg.start(self.pg_name)
        self._fresh_databases(server)
        self._start_fake()
        dagster_db = f"{db.APP_DATABASE}_soak_dagster"
        self.harness = DaemonHarness(
            database_url=self.database_url, dagster_database=dagster_db, home=self.workdir / "dagster_home"
        )
        self.dagster_port, self.api_port = free_port(), free_port()
        self.env = {
            **self.harness.env,
            "PYTHONPATH": str(PROJECT_ROOT),
            **demo_env(f"{self.fake_url}/api/v1"),
            "DASHSCOPE_API_KEY": self.api_key,
            "DAGSTER_GRAPHQL_URL": f"http://127.0.0.1:{self.dagster_port}/graphql",
            **llm_env,
        }
        self.harness.env.update(self.env)
        self._setup_venue()  # the demo's setup writes the project's dagster.yaml into the home: then ours
        write_dagster_home(self.harness.home, run_monitoring=RUN_MONITORING)
        self.daemon = self.harness.start()
        self._spawn(
            "webserver",
            [str(BIN / "dagster-webserver"), "-w", str(PROJECT_ROOT / "workspace.yaml")]
            + ["-h", "127.0.0.1", "-p", str(self.dagster_port)],
        )
        self._spawn(
            "api",
            [str(BIN / "uvicorn"), "api.main:app", "--host", "127.0.0.1", "--port", str(self.api_port)]
            + [*UVICORN_OPTIONS, "--workers", "2", "--log-level", "info"],
            env={**self.env, **api_env},
        )
        wait_for(lambda: _answers(f"{self.api_url}/api/health"), 120, "the API to serve")
        wait_for(lambda: len(self.api_workers()) == 2, 60, "two API workers")
        wait_for(lambda: _answers(f"http://127.0.0.1:{self.dagster_port}/server_info"), 180, "the Dagster webserver")

    def _fresh_databases(self, server: str) -> None:
        """A clean app database and Dagster database on the soak's own server."""
        with db.connect(db.with_database(server, "postgres"), autocommit=True) as conn:
            for name in (db.APP_DATABASE, f"{db.APP_DATABASE}_soak_dagster"):
                conn.execute(db.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db.sql.Identifier(name)))
        self.database_url = db.with_database(server, db.APP_DATABASE)

    def _start_fake(self) -> None:
        log = self._log("fake")
        proc = subprocess.Popen(
            [sys.executable, "-m", "zqyy_assets.testing.fake_dashscope", "--port", "0"]
            + ["--api-key", self.api_key, "--chunks", "6", "--chunk-delay-ms", "40", "--latency-ms", "60"],
            cwd=PROJECT_ROOT,
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        )
        self.procs["fake"] = proc
        path = self.workdir / "fake.log"
        found = wait_for(lambda: re.search(r"(http://\S+)/api/v1", path.read_text()), 30, "the fake DashScope")
        self.fake_url = found.group(1)

    def _setup_venue(self) -> None:
        """The demo's own preparation (migrations, the venue, DWS as a Dagster run, the app2 prewarm by
        the offline analyst, so the soak's upstream counts start at zero)."""
        out = subprocess.run(
            [str(BIN / "zqyy"), "demo", "--no-serve", "--sites", str(self.sites), "--days", str(self.days)]
            + ["--seed", str(self.seed)],
            cwd=PROJECT_ROOT,
            env={**self.env, "DATABASE_URL": self.database_url, "ZQYY_LLM_PROVIDER": "offline"},
            stdout=self._log("setup"),
            stderr=subprocess.STDOUT,
            timeout=900,
        )
        if out.returncode != 0:
            raise RuntimeError(f"the demo setup failed; see {self.workdir / 'setup.log'}")

    def _log(self, name: str) -> Any:
        handle = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115  closed in stop()
        self._logs.append(handle)
        return handle

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        log = self._log(name)
        proc = subprocess.Popen(
            args, cwd=PROJECT_ROOT, env=env or self.env, stdout=log, stderr=log, start_new_session=True
        )
        self.procs[name] = proc
        return proc

    @property
    def dagster_url(self) -> str:
        """Dagster's storage database, as a plain URL (for reading its runs)."""
        return db.with_database(self.database_url, f"{db.APP_DATABASE}_soak_dagster")

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def fake(self) -> FakeAdmin:
        return FakeAdmin(self.fake_url)

    def api_workers(self) -> list[int]:
        """The uvicorn workers (not multiprocessing's resource tracker)."""
        workers = []
        for pid in children(self.procs["api"].pid):
            with suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    workers.append(pid)
        return workers

    # -------------------------------------------------------------------------------- faults

    def restart_postgres(self, down_s: float) -> tuple[float, float]:
        """Stop the server (fast shutdown: every connection dies), leave it down, start it again;
        (stopped at, started at) in ``time.time()``."""
        embedded_pg.stop(self.pg_name)
        stopped = time.time()
        time.sleep(down_s)  # the outage itself, not a wait for a condition
        # A process of its own: the wheel keeps one server handle per process and would not start it twice.
        subprocess.run(
            [sys.executable, "-c", f"from zqyy_assets.core import embedded_pg; embedded_pg.start({self.pg_name!r})"],
            cwd=PROJECT_ROOT,
            env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
            check=True,
            timeout=120,
            capture_output=True,
        )
        return stopped, time.time()

    def kill_daemon(self) -> float:
        """SIGKILL the Dagster daemon alone (its code server and runs live on), then start a new one."""
        assert self.harness is not None and self.daemon is not None
        self.harness.kill(self.daemon)
        killed = time.time()
        self.daemon = self.harness.start()
        return killed

    def kill_api_worker(self) -> tuple[int, float]:
        """SIGKILL one API worker; uvicorn's supervisor starts a new one. (pid, when)."""
        pid = self.api_workers()[0]
        os.kill(pid, signal.SIGKILL)
        return pid, time.time()

    # ---------------------------------------------------------------------------------- down

    def stop(self) -> None:
        for name in ("api", "webserver"):
            proc = self.procs.get(name)
            if proc is not None and proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        if self.harness is not None:
            self.harness.stop_all()
        fake = self.procs.get("fake")
        if fake is not None and fake.poll() is None:
            fake.terminate()
            fake.wait(timeout=10)
        for handle in self._logs:
            handle.close()
        embedded_pg.stop(self.pg_name)

    def log_files(self) -> list[Path]:
        """Every log of the soak: its processes', the daemons', and what Dagster stored under its home."""
        return [p for p in self.workdir.rglob("*") if p.is_file() and p.suffix in (".log", ".err", ".out", ".txt")]

    def dump(self, name: str, data: Any) -> None:
        (self.workdir / name).write_text(json.dumps(data, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
