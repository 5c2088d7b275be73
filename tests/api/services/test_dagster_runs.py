"""run/{app_type} against a real Dagster webserver (a subprocess on loopback) with Postgres storage.

The code location is tests/api/services/dagster_location.py: stand-ins named like the AI assets,
with their partitions, writing cache rows (see its docstring for why not the real assets).
"""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.services.pipeline_runs import app_target
from api.settings import Settings
from tests.api.conftest import SITE, bearer
from tests.api.services.conftest import dagster_webserver, module_database
from zqyy_assets.core import db
from zqyy_assets.core.settings import DatabaseSettings

LOCATION = Path(__file__).with_name("dagster_location.py")


@pytest.fixture(scope="module")
def app_database(pg_server_url: str, template_db: str) -> Iterator[str]:
    with module_database(pg_server_url, template_db, "runs") as url:
        yield url


@pytest.fixture(scope="module")
def dagster_url(pg_server_url: str, app_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with dagster_webserver(
        pg_server_url,
        tmp_path_factory.mktemp("dagster_home"),
        ["-f", str(LOCATION)],
        {"ZQYY_TEST_DATABASE_URL": app_database},
    ) as url:
        yield url


@pytest.fixture(scope="module")
def client(app_database: str, dagster_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database=DatabaseSettings(database_url=app_database),
        db_pool_min_size=1,
        db_pool_max_size=4,
        dagster_graphql_url=dagster_url,
        run_app_timeout_s=20,
        run_app_poll_interval_s=0.2,
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def admin(app_database: str) -> dict[str, str]:
    from zqyy_assets.core import tokens as token_store

    with db.transaction(app_database) as conn:
        return bearer(token_store.issue(conn, subject="店长", role="admin", site_ids=[SITE]).token)


def test_member_app_adds_its_dynamic_partition_and_answers_from_the_cache(client, admin) -> None:
    response = client.post("/api/admin/ai/run/app3_clue", json={"site_id": SITE, "member_id": 42}, headers=admin)
    body = response.json()
    assert response.status_code == 200 and body["success"] is True, body
    assert (body["app_type"], body["run_status"], body["target_id"], body["error"]) == (
        "app3_clue",
        "SUCCESS",
        "42",
        None,
    )
    assert body["result"]["target"] == "42"
    tags = body["result"]["tags"]
    assert tags["dagster/partition"] == f"{SITE}-42" and tags["zqyy/force"] == "true"
    assert tags["zqyy/trigger"] == "admin_manual" and tags["zqyy/site_id"] == str(SITE)


def test_app2a_runs_the_app2_asset_partition_and_assistant_member_apps_their_own(client, admin) -> None:
    # app4's partition key is new; app3's member 42 (previous test) already exists: both fine.
    body = client.post(
        "/api/admin/ai/run/app2a_finance_area",
        json={"site_id": SITE, "time_dimension": "last_month", "area": "vip"},
        headers=admin,
    ).json()
    assert body["success"] is True, body
    assert body["target_id"] == "last_month__vip" and body["result"]["app"] == "app2a_finance_area"
    assert body["result"]["tags"]["dagster/partition"] == "vip|last_month"
    pair = client.post(
        "/api/admin/ai/run/app4_analysis", json={"site_id": SITE, "member_id": 42, "assistant_id": 3}, headers=admin
    ).json()
    assert pair["success"] is True and pair["result"]["target"] == "3_42", pair


def test_failed_run_and_timeout_answer_success_false(client, admin) -> None:
    note = {"note_content": "想办储值卡", "noted_by_name": "前台"}
    failed = client.post(
        "/api/admin/ai/run/app6_note", json={"site_id": SITE, "member_id": 42, **note}, headers=admin
    ).json()
    assert failed["success"] is False and failed["run_status"] == "FAILURE"
    assert failed["error"] == f"run {failed['run_id']} ended FAILURE; see the run's logs in Dagster"
    client.app.state.settings.run_app_timeout_s = 1.0  # app7_customer sleeps 4 s
    try:
        started = time.monotonic()
        slow = client.post(
            "/api/admin/ai/run/app7_customer", json={"site_id": SITE, "member_id": 42}, headers=admin
        ).json()
    finally:
        client.app.state.settings.run_app_timeout_s = 20
    assert time.monotonic() - started < 10
    assert slow["success"] is False and slow["run_status"] in ("STARTING", "STARTED", "QUEUED", "NOT_STARTED")
    assert slow["error"].startswith(f"run {slow['run_id']} is still {slow['run_status']} after 1 s")
    # The run goes on and caches its answer; wait for it (no run is left behind by the test).
    status, finished = client.portal.call(
        lambda: client.app.state.dagster.wait(slow["run_id"], timeout_s=60, poll_s=0.5)
    )
    assert (status, finished) == ("SUCCESS", True)
    cached = client.get("/api/ai/cache/app7_customer/42", headers=admin).json()
    assert cached["dagster_run_id"] == slow["run_id"]


def test_partition_keys_match_the_ai_assets_helpers() -> None:
    from zqyy_assets.core import partition_keys as partitions

    app2 = app_target("app2a_finance_area", SITE, time_dimension="this_week", area="hallB")
    assert app2.partition_key == str(partitions.app2_partition_key("this_week", "hallB"))
    member = app_target("app8_consolidation", SITE, member_id=9)
    assert member.partition_key == partitions.member_partition_key(SITE, 9)
    pair = app_target("app5_tactics", SITE, member_id=9, assistant_id=4)
    assert pair.partition_key == partitions.assistant_member_partition_key(SITE, 4, 9)
