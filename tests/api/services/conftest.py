"""A real dagster-webserver for the tests that reach Dagster over GraphQL: a subprocess on a free
loopback port, with its own DAGSTER_HOME and Postgres storage database on the test server; and
the venue database, location environment and API settings those tests share."""

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

from api.settings import Settings
from tests.databases import cloned_database, drop_database
from tests.defs.ai.venue import load_ai_venue
from zqyy_assets.core import db
from zqyy_assets.core.settings import DatabaseSettings


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
def venue_database_for(pg_server_url: str, template_db: str, label: str) -> Iterator[str]:
    """``module_database`` with the AI test venue loaded."""
    with module_database(pg_server_url, template_db, label) as url:
        with db.transaction(url) as conn:
            load_ai_venue(conn)
        yield url


def offline_location_env(database_url: str, **extra: str) -> dict[str, str]:
    """The real code location's environment here: the venue's database and zone, the offline analyst."""
    return {
        "DATABASE_URL": database_url,
        "VENUE_TIMEZONE": "Asia/Shanghai",
        "BUSINESS_DAY_CUTOFF_HOURS": "6",
        "ZQYY_LLM_PROVIDER": "offline",
        "DASHSCOPE_API_KEY": "",
        **extra,
    }


def api_settings_for(database_url: str, dagster_graphql_url: str, **overrides: object) -> Settings:
    """The API's settings against that database and webserver: a small pool, no token cache."""
    fields: dict[str, object] = {
        "db_pool_min_size": 1,
        "db_pool_max_size": 4,
        "run_app_timeout_s": 90,
        "run_app_poll_interval_s": 0.3,
        "auth_cache_ttl_s": 0,
        **overrides,
    }
    return Settings(
        database=DatabaseSettings(database_url=database_url), dagster_graphql_url=dagster_graphql_url, **fields
    )


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
