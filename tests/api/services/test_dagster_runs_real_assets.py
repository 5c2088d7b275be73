"""run/{app_type} once against the project's own code location (zqyy_assets.definitions):
the real AI assets, on the AI tests' venue, with the offline provider (no network, no key)."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.conftest import bearer
from tests.api.services.conftest import api_settings_for, dagster_webserver, offline_location_env, venue_database_for
from zqyy_assets.core import db
from zqyy_assets.core import tokens as token_store


@pytest.fixture(scope="module")
def venue_database(pg_server_url: str, template_db: str) -> Iterator[str]:
    with venue_database_for(pg_server_url, template_db, "realruns") as url:
        yield url


@pytest.fixture(scope="module")
def client(pg_server_url: str, venue_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    env = offline_location_env(venue_database)
    with dagster_webserver(
        pg_server_url, tmp_path_factory.mktemp("dagster_home"), ["-m", "zqyy_assets.definitions"], env
    ) as url:
        settings = api_settings_for(venue_database, url)
        with TestClient(create_app(settings)) as test_client:
            yield test_client


def test_real_member_and_finance_apps_run_and_answer(client: TestClient, venue_database: str) -> None:
    with db.transaction(venue_database) as conn:
        admin = bearer(token_store.issue(conn, subject="店长", role="admin", site_ids=[1]).token)
    clue = client.post("/api/admin/ai/run/app3_clue", json={"site_id": 1, "member_id": 100}, headers=admin).json()
    assert clue["success"] is True, clue
    assert clue["run_status"] == "SUCCESS" and clue["target_id"] == "100"
    assert isinstance(clue["result"]["clues"], list) and clue["result"]["_provider"] == "offline"
    cached = client.get("/api/ai/cache/app3_clue/100?site_id=1", headers=admin).json()
    assert (cached["dagster_run_id"], cached["triggered_by"]) == (clue["run_id"], "admin_manual")

    finance = client.post(
        "/api/admin/ai/run/app2a_finance_area",
        json={"site_id": 1, "time_dimension": "this_month", "area": "vip"},
        headers=admin,
    ).json()
    assert finance["success"] is True, finance
    assert finance["target_id"] == "this_month__vip" and isinstance(finance["result"]["insights"], list)
    # The run was narrowed to this site: the other active site got no answer from it.
    with db.connect(venue_database) as conn:
        sites = {
            r["site_id"]
            for r in conn.execute("SELECT site_id FROM biz.ai_cache WHERE dagster_run_id = %s", (finance["run_id"],))
        }
    assert sites == {1}

    # App6 analyses the note it is given (the member's ODS notes are context), as the old backend did.
    note = client.post(
        "/api/admin/ai/run/app6_note",
        json={
            "site_id": 1,
            "member_id": 100,
            "note_content": "最近想办张储值卡，问有没有充值活动",
            "noted_by_name": "王教练",
            "noted_by_created_at": "2026-03-04T10:15:00+08:00",
        },
        headers=admin,
    ).json()
    assert note["success"] is True, note
    details = [c["detail"] for c in note["result"]["clues"]]
    assert "来自王教练的备注：最近想办张储值卡" in details, details
