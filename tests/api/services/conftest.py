"""A real dagster-webserver for the run/{app_type} tests: a subprocess on a free loopback port,
with its own DAGSTER_HOME and Postgres storage database on the test server."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.databases import cloned_database, drop_database
from zqyy_assets.core import db


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


@contextmanager
def module_database(pg_server_url: str, template_db: str, label: str) -> Iterator[str]:
    """A migrated app database for a module (the webserver's run processes write into it)."""
    with cloned_database(pg_server_url, template_db, prefix=f"zqyy_t_{label}") as url:
        yield url


@contextmanager
def dagster_webserver(pg_server_url: str, home: Path, location: list[str], env: dict[str, str]) -> Iterator[str]:
    """Yields the GraphQL URL. Runs launch at once (DefaultRunCoordinator: no daemon needed)."""
    storage_db = f"zqyy_t_dagster_{uuid.uuid4().hex[:8]}"
    db.ensure_database(pg_server_url, storage_db)
    (home / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url:\n      env: DAGSTER_PG_URL\n"
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    storage_url = db.dagster_storage_url(pg_server_url, storage_db)
    port = _free_port()
    log_path = home / "webserver.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("dagster-webserver")), "-h", "127.0.0.1", "-p", str(port), *location],
            env={**os.environ, "DAGSTER_HOME": str(home), "DAGSTER_PG_URL": storage_url, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the code server it spawns is stopped with it
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"dagster-webserver did not start: {log_path.read_text()[-3000:]}") from None
                    time.sleep(0.5)
            yield f"http://127.0.0.1:{port}/graphql"
        finally:
            # The webserver's gRPC code server outlives a terminated webserver: signal the whole group.
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
            _signal_group(proc.pid, signal.SIGKILL)  # whatever of the group is still there
            drop_database(pg_server_url, storage_db)
