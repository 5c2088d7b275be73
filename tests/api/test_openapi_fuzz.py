"""Schemathesis over the served OpenAPI document with every check: the document tells the truth.

The app is served by uvicorn on loopback (a thread of this process) on its own migrated
database, and schemathesis' own command line (``st run --checks all``, every phase: examples,
coverage, fuzzing, stateful) sends every operation generated requests with an admin token, of
one site and of two (so auth passes and the generated bodies and parameters reach the
handlers). Dagster is a closed port (run/{app_type} answers success=false) and the chat is offline.

Checks: no 5xx; every status, header, content type and body as declared; schema-violating
input refused; schema-valid input accepted, or refused with the documented 422 by a rule JSON
Schema cannot state (the fields an app type needs, a date range's bounds and order, a cache
target's format, site_id with a token of several sites): the one setting below; methods not
served answered 405 with ``Allow``; auth not ignored.
"""

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import uvicorn

from api.main import create_app
from api.settings import Settings
from tests.api.conftest import SITE, bearer, put_alert, put_cache
from tests.databases import cloned_database
from zqyy_assets.core import db
from zqyy_assets.core import tokens as token_store
from zqyy_assets.core.settings import DatabaseSettings

EXAMPLES_PER_OPERATION = 10  # per operation and phase: about 10 s a token on this machine
OPERATIONS = 30  # every route, so none is skipped silently
# The one setting: a documented 422 for schema-valid input (see above); the rest is the default.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx", "422"]
"""


@pytest.fixture(scope="module")
def fuzz_db(pg_server_url: str, template_db: str) -> Iterator[str]:
    with cloned_database(pg_server_url, template_db, prefix="zqyy_t_fuzz") as url:
        # Some rows, so generated ids and targets sometimes hit real data.
        put_cache(url, site=SITE, app="app3_clue", target="1", result={"clues": []})
        put_cache(url, site=SITE, app="app2_finance", target="this_month__all", result={"insights": []})
        put_alert(url, site=SITE)
        yield url


@pytest.fixture(scope="module")
def served(fuzz_db: str) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as env:
        env.delenv("DASHSCOPE_API_KEY", raising=False)
        env.setenv("ZQYY_LLM_PROVIDER", "offline")
        settings = Settings(
            database=DatabaseSettings(database_url=fuzz_db),
            db_pool_min_size=1,
            db_pool_max_size=8,
            dagster_graphql_url="http://127.0.0.1:9/graphql",
            # Off: past the fuzzer's first bad tokens of a minute every answer would be the throttle's
            # 429, hiding the answers under test (its 429 is declared; tests/api/test_auth_throttle.py).
            auth_failures_per_minute=0,
        )
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, name="fuzz-api", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)


@pytest.fixture(scope="module")
def admin_headers(fuzz_db: str) -> dict[str, str]:
    with db.transaction(fuzz_db) as conn:
        return bearer(token_store.issue(conn, subject="fuzzer", role="admin", site_ids=[SITE]).token)


def schemathesis_run(api_url: str, headers: dict[str, str], config_dir: Path) -> str:
    """``st run --checks all`` over the served document; its report, asserted clean."""
    config = config_dir / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(config),
        "run",
        f"{api_url}/openapi.json",
        "--checks",
        "all",
        "--header",
        f"Authorization: {headers['Authorization']}",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--seed",
        "20261130",
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--no-color",
        "--report-dir",
        str(config_dir / "report"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=config_dir)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-6000:]
    assert f"Selected: {OPERATIONS}/{OPERATIONS}" in report and f"Tested: {OPERATIONS}" in report, report[-3000:]
    return report


def test_every_check_passes_for_a_one_site_token(served: str, admin_headers: dict[str, str], tmp_path: Path) -> None:
    schemathesis_run(served, admin_headers, tmp_path)


@pytest.fixture(scope="module")
def two_sites_headers(fuzz_db: str) -> dict[str, str]:
    with db.transaction(fuzz_db) as conn:
        return bearer(token_store.issue(conn, subject="fuzzer-2", role="admin", site_ids=[SITE, SITE + 1]).token)


def test_every_check_passes_for_a_token_of_two_sites(
    served: str, two_sites_headers: dict[str, str], tmp_path: Path
) -> None:
    """Such a token must name site_id: leaving it out is the documented 422, in the declared shape."""
    response = requests.get(f"{served}/api/admin/ai/prewarm/progress", headers=two_sites_headers, timeout=30)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "type": "value_error",
            "loc": ["query", "site_id"],
            "msg": f"site_id is required: this token covers sites [{SITE}, {SITE + 1}]",
            "input": None,
        }
    ]
    schemathesis_run(served, two_sites_headers, tmp_path)
