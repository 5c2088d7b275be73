"""The daily prewarm's cron changed through the API survives restarts: of the API, of Dagster's
webserver and code server (a new process reads it when it loads), and of whatever else loads the
code location (the daemon): Dagster itself is asked each time, not our service."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.conftest import bearer
from tests.api.services.conftest import api_settings_for, dagster_webserver, offline_location_env, venue_database_for
from zqyy_assets.core import db
from zqyy_assets.core import tokens as token_store
from zqyy_assets.core.schedules import PREWARM_SCHEDULE_NAME
from zqyy_assets.definitions import defs

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def venue_database(pg_server_url: str, template_db: str) -> Iterator[str]:
    with venue_database_for(pg_server_url, template_db, "cron") as url:
        yield url


@contextmanager
def dagster(pg_server_url: str, venue_database: str, home) -> Iterator[str]:
    env = offline_location_env(venue_database, APP2_PREWARM_CRON="0 10 * * *")
    with dagster_webserver(pg_server_url, home, ["-m", "zqyy_assets.definitions"], env) as url:
        yield url


@contextmanager
def api(venue_database: str, dagster_url: str) -> Iterator[TestClient]:
    settings = api_settings_for(venue_database, dagster_url, db_pool_max_size=2)
    with TestClient(create_app(settings)) as client:
        yield client


def dagster_cron(dagster_url: str) -> str:
    """The schedule's cron as Dagster's webserver has it loaded, asked directly."""
    repo = requests.post(
        dagster_url,
        json={"query": "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"},
        timeout=30,
    ).json()["data"]["repositoriesOrError"]["nodes"][0]
    selector = {
        "repositoryName": repo["name"],
        "repositoryLocationName": repo["location"]["name"],
        "scheduleName": PREWARM_SCHEDULE_NAME,
    }
    query = (
        "query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) { ... on Schedule { cronSchedule } } }"
    )
    data = requests.post(dagster_url, json={"query": query, "variables": {"s": selector}}, timeout=30).json()
    return data["data"]["scheduleOrError"]["cronSchedule"]


def prewarm(client: TestClient, headers: dict[str, str]) -> dict:
    response = client.get("/api/admin/ai/triggers", headers=headers)
    assert response.status_code == 200 and "x-dagster-error" not in response.headers, response.headers
    (item,) = [i for i in response.json() if i["job_name"] == PREWARM_SCHEDULE_NAME]
    return item


def assert_next_at_0930_shanghai(item: dict) -> None:
    """next_run_at is the cron's next firing in the venue's zone: 09:30 there, within a day."""
    when = datetime.fromisoformat(item["next_run_at"])
    now = datetime.now(UTC)
    local = when.astimezone(SHANGHAI)
    assert (local.hour, local.minute) == (9, 30) and now < when <= now + timedelta(days=1), item


def test_the_prewarm_cron_changes_and_survives_restarts(
    pg_server_url: str, venue_database: str, tmp_path_factory: pytest.TempPathFactory, monkeypatch
) -> None:
    with db.transaction(venue_database) as conn:
        admin = bearer(token_store.issue(conn, subject="店长", role="admin", site_ids=[1]).token)

    with dagster(pg_server_url, venue_database, tmp_path_factory.mktemp("home")) as url, api(venue_database, url) as c:
        before = prewarm(c, admin)
        assert before["trigger_config"]["cron_expression"] == "0 10 * * *"
        response = c.patch(
            f"/api/admin/ai/triggers/{before['id']}", json={"cron_expression": "30 9 * * *"}, headers=admin
        )
        assert response.status_code == 200 and "x-dagster-error" not in response.headers, response.text
        item = response.json()
        # Dagster reloaded the code location at once: the answer, the list and Dagster itself agree.
        assert item["trigger_config"]["cron_expression"] == "30 9 * * *"
        assert "saved_cron_expression" not in item["trigger_config"] and item["last_error"] is None
        assert_next_at_0930_shanghai(item)
        assert dagster_cron(url) == "30 9 * * *"
        assert prewarm(c, admin)["trigger_config"]["cron_expression"] == "30 9 * * *"

    # Everything stopped and started again: a new webserver and code server, a new API process.
    with dagster(pg_server_url, venue_database, tmp_path_factory.mktemp("home")) as url, api(venue_database, url) as c:
        assert dagster_cron(url) == "30 9 * * *"
        after = prewarm(c, admin)
        assert after["id"] == before["id"] and after["trigger_config"]["cron_expression"] == "30 9 * * *"
        assert_next_at_0930_shanghai(after)

    # The daemon loads the same code location: loading the definitions again gives it the same cron.
    monkeypatch.setenv("DATABASE_URL", venue_database)
    monkeypatch.setenv("APP2_PREWARM_CRON", "0 10 * * *")
    assert defs().resolve_schedule_def(PREWARM_SCHEDULE_NAME).cron_schedule == "30 9 * * *"
