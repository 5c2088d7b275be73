"""Triggers and batch runs against a real Dagster webserver serving the project's own code location
(zqyy_assets.definitions: its real sensors, schedule and AI assets), on the AI tests' venue with
the offline provider. No daemon runs: sensors and schedules do not tick, runs launch at once."""

import time
from collections.abc import Iterator

import pytest
import requests
from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.conftest import bearer
from tests.api.services.conftest import api_settings_for, dagster_webserver, offline_location_env, venue_database_for
from zqyy_assets.core import db
from zqyy_assets.core import tokens as token_store

SENSORS = {"ai_events_sensor", "dws_completion_sensor", "ai_event_status_sensor", "ai_run_failure_alert_sensor"}
SCHEDULE = "app2_daily_prewarm_schedule"
RETIREMENT_SCHEDULE = "member_partitions_retirement_schedule"  # listed like any schedule (its cron is not editable)


@pytest.fixture(scope="module")
def venue_database(pg_server_url: str, template_db: str) -> Iterator[str]:
    with venue_database_for(pg_server_url, template_db, "admindg") as url:
        yield url


@pytest.fixture(scope="module")
def dagster_url(pg_server_url: str, venue_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = offline_location_env(venue_database, APP2_PREWARM_CRON="0 10 * * *")
    with dagster_webserver(
        pg_server_url, tmp_path_factory.mktemp("dagster_home"), ["-m", "zqyy_assets.definitions"], env
    ) as url:
        yield url


@pytest.fixture(scope="module")
def client(venue_database: str, dagster_url: str) -> Iterator[TestClient]:
    with pytest.MonkeyPatch.context() as env:
        # The API hashes prompts with the pipeline's provider: both offline here.
        env.setenv("ZQYY_LLM_PROVIDER", "offline")
        env.delenv("DASHSCOPE_API_KEY", raising=False)
        settings = api_settings_for(venue_database, dagster_url, dagster_ui_url="http://dagster.example:3000")
        with TestClient(create_app(settings)) as test_client:
            yield test_client


@pytest.fixture(scope="module")
def admin(venue_database: str) -> dict[str, str]:
    with db.transaction(venue_database) as conn:
        return bearer(token_store.issue(conn, subject="店长", role="admin", site_ids=[1]).token)


def _dagster_status(dagster_url: str, kind: str, name: str) -> str:
    """Dagster's own view, asked directly (not through our service)."""
    repo = requests.post(
        dagster_url,
        json={"query": "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"},
        timeout=30,
    ).json()
    node = repo["data"]["repositoriesOrError"]["nodes"][0]
    selector = {"repositoryName": node["name"], "repositoryLocationName": node["location"]["name"]}
    if kind == "sensor":
        query = (
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) "
            "{ ... on Sensor { sensorState { status } } } }"
        )
        data = requests.post(
            dagster_url, json={"query": query, "variables": {"s": selector | {"sensorName": name}}}, timeout=30
        ).json()
        return data["data"]["sensorOrError"]["sensorState"]["status"]
    query = (
        "query($s: ScheduleSelector!) { scheduleOrError(scheduleSelector: $s) "
        "{ ... on Schedule { scheduleState { status } } } }"
    )
    data = requests.post(
        dagster_url, json={"query": query, "variables": {"s": selector | {"scheduleName": name}}}, timeout=30
    ).json()
    return data["data"]["scheduleOrError"]["scheduleState"]["status"]


def test_triggers_are_dagsters_sensors_and_schedules_started_and_stopped_through_it(client, admin, dagster_url) -> None:
    items = client.get("/api/admin/ai/triggers", headers=admin).json()
    by_name = {i["job_name"]: i for i in items}
    assert set(by_name) == SENSORS | {SCHEDULE, RETIREMENT_SCHEDULE}
    schedule, sensor = by_name[SCHEDULE], by_name["ai_events_sensor"]
    assert (schedule["trigger_condition"], schedule["job_type"], schedule["status"]) == ("cron", "schedule", "enabled")
    assert schedule["trigger_config"] == {
        "cron_expression": "0 10 * * *",
        "execution_timezone": "Asia/Shanghai",
        "jobs": ["app2_prewarm_job"],
        "cron_editable": True,
    }
    assert schedule["next_run_at"] is not None and schedule["last_run_at"] is None  # no daemon: never ticked
    assert (
        schedule["dagster_url"] == f"http://dagster.example:3000/locations/zqyy_assets.definitions/schedules/{SCHEDULE}"
    )
    assert (sensor["trigger_condition"], sensor["status"], sensor["last_error"]) == ("event", "enabled", None)
    # Ids are stable numbers: the same on every listing.
    assert {i["id"]: i["job_name"] for i in client.get("/api/admin/ai/triggers", headers=admin).json()} == {
        i["id"]: i["job_name"] for i in items
    }

    stopped = client.patch(f"/api/admin/ai/triggers/{sensor['id']}", json={"status": "disabled"}, headers=admin)
    assert stopped.status_code == 200 and stopped.json()["status"] == "disabled"
    assert _dagster_status(dagster_url, "sensor", "ai_events_sensor") == "STOPPED"
    started = client.patch(f"/api/admin/ai/triggers/{sensor['id']}", json={"status": "enabled"}, headers=admin).json()
    assert started["status"] == "enabled" and _dagster_status(dagster_url, "sensor", "ai_events_sensor") == "RUNNING"

    off = client.patch(f"/api/admin/ai/triggers/{schedule['id']}", json={"status": "disabled"}, headers=admin).json()
    assert (off["status"], off["next_run_at"]) == ("disabled", None)
    assert _dagster_status(dagster_url, "schedule", SCHEDULE) == "STOPPED"

    # A bad cron is refused, naming the field, and nothing in the request is applied (the schedule stays stopped).
    refused = client.patch(
        f"/api/admin/ai/triggers/{schedule['id']}",
        json={"status": "enabled", "cron_expression": "0 25 * * *"},
        headers=admin,
    )
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "cron_expression"]
    assert _dagster_status(dagster_url, "schedule", SCHEDULE) == "STOPPED"
    on = client.patch(
        f"/api/admin/ai/triggers/{schedule['id']}",
        json={"status": "enabled", "cron_expression": "0  10 * * *", "description": "每天十点预热"},
        headers=admin,
    ).json()
    assert (on["status"], on["description"]) == ("enabled", "每天十点预热")
    assert _dagster_status(dagster_url, "schedule", SCHEDULE) == "RUNNING"

    no_cron = client.patch(
        f"/api/admin/ai/triggers/{sensor['id']}", json={"cron_expression": "* * * * *"}, headers=admin
    )
    assert no_cron.status_code == 422
    (error,) = no_cron.json()["detail"]
    assert error["loc"] == ["body", "cron_expression"] and "is a sensor" in error["msg"]
    assert client.patch("/api/admin/ai/triggers/999999", json={"status": "enabled"}, headers=admin).status_code == 404
    assert (
        client.patch(f"/api/admin/ai/triggers/{sensor['id']}", json={"status": "paused"}, headers=admin).status_code
        == 422
    )


def _wait(client: TestClient, run_ids: list[str], timeout_s: float = 120) -> dict[str, str]:
    deadline = time.monotonic() + timeout_s
    while True:
        statuses = client.portal.call(client.app.state.dagster.statuses, run_ids)
        if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses.values()) and len(statuses) == len(run_ids):
            return statuses
        assert time.monotonic() < deadline, statuses
        time.sleep(0.5)


def test_confirmed_batch_runs_in_dagster_and_leaves_nothing_to_ask(client, admin, venue_database) -> None:
    body = {
        "site_id": 1,
        "member_ids": [100, 999],
        "app_types": ["app2_finance", "app3_clue", "app6_note", "app8_consolidation"],
    }
    estimate = client.post("/api/admin/ai/batch-run", json=body, headers=admin).json()
    # Each run launch costs seconds of CPU, so two runs here: the 8 finance partitions as one
    # range run, member 100's chain as one run (App8 counted after App3); member 999 does not exist.
    calls = estimate["calls_by_app"]
    assert calls == {"app2_finance": 8, "app3_clue": 1, "app6_note": 1, "app8_consolidation": 1}
    assert estimate["skipped_by_app"]["app3_clue"] == 1 and estimate["estimated_calls"] == 11

    confirmed = client.post("/api/admin/ai/batch-run/confirm", json={"batch_id": estimate["batch_id"]}, headers=admin)
    assert confirmed.status_code == 200, confirmed.text
    runs = confirmed.json()["runs"]
    assert [(r["partition"], r["assets"]) for r in runs] == [
        ("all|this_month...all|last_6_months", ["app2_finance"]),
        ("1-100", ["app3_clue", "app6_note", "app8_consolidation"]),
    ]
    assert runs[0]["url"] == f"http://dagster.example:3000/runs/{runs[0]['run_id']}"
    statuses = _wait(client, [r["run_id"] for r in runs])
    assert set(statuses.values()) == {"SUCCESS"}, statuses

    with db.connect(venue_database) as conn:
        cached = conn.execute(
            """SELECT cache_type, count(*) AS n FROM biz.ai_cache WHERE dagster_run_id = ANY(%s)
                                 GROUP BY cache_type""",
            ([r["run_id"] for r in runs],),
        ).fetchall()
    assert {r["cache_type"]: r["n"] for r in cached} == {k: v for k, v in calls.items() if v}
    again = client.post("/api/admin/ai/batch-run", json=body, headers=admin).json()
    assert (again["estimated_calls"], again["estimated_tokens"], again["runs_planned"]) == (0, 0, 0)
    assert again["memoized_by_app"] == calls

    # The run log links each call to its run in Dagster's UI.
    logs = client.get("/api/admin/ai/run-logs?site_id=1&app_type=app3_clue", headers=admin).json()["items"]
    assert logs and all(i["dagster_run_url"] == f"http://dagster.example:3000/runs/{i['dagster_run_id']}" for i in logs)
