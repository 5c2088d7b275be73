"""The real Dagster daemon as a subprocess, on a scratch instance (the restart test, the benchmark).

``dagster-daemon run`` loads ``workspace.yaml`` (this project's code location) with a
DAGSTER_HOME holding the project's ``dagster.yaml`` (Postgres storage, queued run coordinator),
optionally with run-coordinator overrides. Each daemon runs in its own process group, so
``kill()`` can crash the daemon alone (its code server and runs live on, as after a real crash)
and ``stop_all()`` ends every process any daemon of the harness started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import yaml

from zqyy_assets.core import db

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def write_dagster_home(
    home: Path,
    run_coordinator_config: Mapping[str, Any] | None = None,
    run_monitoring: Mapping[str, Any] | None = None,
    storage_config: Mapping[str, Any] | None = None,
) -> Path:
    """DAGSTER_HOME with the project's dagster.yaml, run-coordinator, run-monitoring and storage
    settings overridden (a short max runtime, say)."""
    home.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text(encoding="utf-8"))
    if storage_config:
        config["storage"]["custom"]["config"].update(storage_config)
    if run_coordinator_config:
        config["run_coordinator"].setdefault("config", {}).update(run_coordinator_config)
    if run_monitoring:
        config.setdefault("run_monitoring", {}).update(run_monitoring)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return home


class DaemonHarness:
    """Starts ``dagster-daemon run`` processes that share one environment."""

    def __init__(
        self,
        *,
        database_url: str,
        dagster_database: str,
        home: Path,
        env: Mapping[str, str] | None = None,
        run_coordinator_config: Mapping[str, Any] | None = None,
        run_monitoring: Mapping[str, Any] | None = None,
        storage_config: Mapping[str, Any] | None = None,
    ) -> None:
        db.ensure_database(database_url, dagster_database)
        self.home = write_dagster_home(home, run_coordinator_config, run_monitoring, storage_config)
        self.dagster_pg_url = db.dagster_storage_url(database_url, dagster_database)
        self.env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_PG_URL": self.dagster_pg_url,
            "DATABASE_URL": database_url,
            "VENUE_TIMEZONE": os.environ.get("VENUE_TIMEZONE", "Asia/Shanghai"),
            "BUSINESS_DAY_CUTOFF_HOURS": os.environ.get("BUSINESS_DAY_CUTOFF_HOURS", "6"),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.processes: list[subprocess.Popen] = []
        self._logs: list[Any] = []

    def start(self) -> subprocess.Popen:
        log = open(self.home / f"daemon-{len(self.processes)}.log", "wb")  # noqa: SIM115 (closed in stop_all)
        self._logs.append(log)
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        """Crash the daemon process alone (SIGKILL), as a power cut of that process would."""
        process.kill()
        process.wait(timeout=10)

    def stop_all(self) -> None:
        """End every process group the harness started: daemons, code servers, run workers."""
        for process in self.processes:
            _signal_group(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for process in self.processes:
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        for process in self.processes:
            _signal_group(process.pid, signal.SIGKILL)
            if process.poll() is None:
                process.wait(timeout=10)
        for log in self._logs:
            log.close()

    def log_text(self) -> str:
        return "\n".join(
            p.read_text(encoding="utf-8", errors="replace") for p in sorted(self.home.glob("daemon-*.log"))
        )


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)


@contextmanager
def daemon_harness(**kwargs: Any) -> Iterator[DaemonHarness]:
    harness = DaemonHarness(**kwargs)
    try:
        yield harness
    finally:
        harness.stop_all()
