"""Schemathesis over the served OpenAPI spec: no input makes the API answer with a 5xx.

The app is served by uvicorn on loopback (a thread of this process) on its own migrated
database, and every operation of /openapi.json gets generated requests with an admin token of
site 1 (so auth passes and the generated bodies and parameters reach the handlers).
Dagster is a closed port (run/{app_type} answers success=false) and the chat is offline.
"""

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from api.main import create_app
from api.settings import Settings
from tests.api.conftest import SITE, bearer, put_alert, put_cache
from tests.databases import cloned_database
from zqyy_assets.core import db
from zqyy_assets.core import tokens as token_store
from zqyy_assets.core.settings import DatabaseSettings

EXAMPLES_PER_OPERATION = 15  # x 30 operations x 2 modes: about half a minute on this machine


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


def test_no_input_gets_a_server_error(served: str, admin_headers: dict[str, str]) -> None:
    """Every operation, with schema-valid (positive) and schema-violating (negative) inputs.

    (Schemathesis' own pytest loader, ``from_fixture``, does not work with pytest 9, so the
    operations' Hypothesis strategies are driven here; the check is its ``not_a_server_error``.)
    """
    api = schemathesis.openapi.from_url(f"{served}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == 30, [op.label for op in operations]  # every route, so none is skipped silently
    server_errors: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case) -> None:
                response = case.call(headers=admin_headers, timeout=30)
                if response.status_code >= 500:
                    server_errors.append(
                        # run() is called right below, inside this iteration: the loop variables are current.
                        f"{operation.label} [{mode}] -> {response.status_code}: "  # noqa: B023
                        f"{case.as_curl_command(headers=admin_headers)}\n{response.text[:300]}"
                    )

            try:
                run()
            except Unsatisfiable:
                # No parameter and no body (e.g. GET /api/budget): nothing can be made invalid.
                assert mode is GenerationMode.NEGATIVE, operation.label
    assert not server_errors, "\n\n".join(server_errors[:10])
