"""Schemathesis over the served OpenAPI spec with every check: the document tells the truth.

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
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import PositiveDataAcceptanceConfig
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.parameters import ParameterLocation

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


def all_checks() -> list:
    """Every check schemathesis has (the CLI's ``--checks all``)."""
    load_all_checks()
    return list(CHECKS.get_all())


def token_for(case, headers: dict[str, str]) -> dict[str, str] | None:
    """The token, unless the case is about a missing one (its headers were made invalid)."""
    header = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    sent = {name.lower() for name in case.headers or {}}
    if header is not None and header.mode.is_negative and "authorization" not in sent:
        return None
    return headers


def failures_of(api_url: str, headers: dict[str, str], *, examples: int, excluded: tuple = ()) -> list[str]:
    """Every operation of the served spec, with schema-valid (positive) and schema-violating
    (negative) inputs, through every check: one line per (operation, check) that failed."""
    api = schemathesis.openapi.from_url(f"{api_url}/openapi.json")
    # Some rules JSON Schema cannot state refuse schema-valid input with a 422: the fields an app
    # type needs (run/{app_type}, batch-run, cache targets), a date range's bounds and order,
    # site_id with a token of several sites. Those 422s are documented, in the declared
    # validation-error shape (response_schema_conformance checks every one).
    api.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
        expected_statuses=[*PositiveDataAcceptanceConfig().expected_statuses, "422"]
    )
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) == 30, [op.label for op in operations]  # every route, so none is skipped silently
    checks = [c for c in all_checks() if c.__name__ not in excluded]
    found: dict[tuple[str, str], str] = {}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            def run(case) -> None:
                try:
                    case.call_and_validate(headers=token_for(case, headers), checks=checks, timeout=30)
                except FailureGroup as group:
                    for failure in group.exceptions:
                        # run() is called right below, inside this iteration: the loop variables are current.
                        key = (operation.label, type(failure).__name__)  # noqa: B023
                        found.setdefault(key, f"{key[0]} [{mode}] {failure.title}: {failure.message}"[:600])  # noqa: B023
                except Failure as failure:
                    key = (operation.label, type(failure).__name__)  # noqa: B023
                    found.setdefault(key, f"{key[0]} [{mode}] {failure.title}: {failure.message}"[:600])  # noqa: B023

            try:
                run()
            except Unsatisfiable:
                # No parameter and no body (e.g. GET /api/budget): nothing can be made invalid.
                assert mode is GenerationMode.NEGATIVE, operation.label
    return list(found.values())


def test_every_check_passes_for_a_one_site_token(served: str, admin_headers: dict[str, str]) -> None:
    """All of schemathesis' checks: no 5xx, every status, header, content type and body as the
    document declares it, schema-valid input accepted, invalid input refused, auth not ignored.

    (Schemathesis' own pytest loader, ``from_fixture``, does not work with pytest 9, so the
    operations' Hypothesis strategies are driven here, each case through ``call_and_validate``.)"""
    failures = failures_of(served, admin_headers, examples=EXAMPLES_PER_OPERATION)
    assert not failures, "\n\n".join(failures)


@pytest.fixture(scope="module")
def two_sites_headers(fuzz_db: str) -> dict[str, str]:
    with db.transaction(fuzz_db) as conn:
        return bearer(token_store.issue(conn, subject="fuzzer-2", role="admin", site_ids=[SITE, SITE + 1]).token)


def test_every_check_passes_for_a_token_of_two_sites(served: str, two_sites_headers: dict[str, str]) -> None:
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
    failures = failures_of(served, two_sites_headers, examples=EXAMPLES_PER_OPERATION // 3)
    assert not failures, "\n\n".join(failures)
