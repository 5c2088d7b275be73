"""Triggers while Dagster cannot be asked (a closed port here); with Dagster, see
tests/api/services/test_admin_dagster.py."""

from fastapi.testclient import TestClient

from zqyy_assets.core import db


def test_list_falls_back_to_the_triggers_seen_before_and_says_why(client: TestClient, db_url: str, admin) -> None:
    with db.transaction(db_url) as conn:
        conn.execute(
            "INSERT INTO biz.admin_triggers (kind, name, description) VALUES "
            "('sensor', 'ai_events_sensor', NULL), ('schedule', 'app2_daily_prewarm_schedule', '每天十点')"
        )
    response = client.get("/api/admin/ai/triggers", headers=admin)
    assert response.status_code == 200 and "Dagster could not be asked" in response.headers["x-dagster-error"]
    items = response.json()
    assert [(i["job_name"], i["trigger_condition"], i["status"], i["description"]) for i in items] == [
        ("ai_events_sensor", "event", "unknown", None),
        ("app2_daily_prewarm_schedule", "cron", "unknown", "每天十点"),
    ]
    assert all(i["last_error"].startswith("Dagster could not be asked") for i in items)
    # A change needs Dagster: 503 naming it, and nothing is changed.
    patch = client.patch(f"/api/admin/ai/triggers/{items[0]['id']}", json={"status": "disabled"}, headers=admin)
    assert patch.status_code == 503 and "Dagster" in patch.json()["detail"]


def _known(db_url: str) -> dict[str, int]:
    with db.transaction(db_url) as conn:
        conn.execute(
            "INSERT INTO biz.admin_triggers (kind, name) VALUES "
            "('sensor', 'ai_events_sensor'), ('schedule', 'app2_daily_prewarm_schedule'), ('schedule', 'other')"
        )
        rows = conn.execute("SELECT id, name FROM biz.admin_triggers").fetchall()
    return {r["name"]: r["id"] for r in rows}


def _saved(db_url: str) -> list[tuple[str, str, str]]:
    with db.connect(db_url) as conn:
        rows = conn.execute("SELECT schedule_name, cron_expression, updated_by FROM biz.schedule_crons").fetchall()
    return [(r["schedule_name"], r["cron_expression"], r["updated_by"]) for r in rows]


def test_a_bad_cron_is_a_422_naming_the_field_and_nothing_is_saved(client: TestClient, db_url: str, admin) -> None:
    ids = _known(db_url)
    for cron, why in [("0 25 * * *", "not a valid cron"), ("0 10 * *", "five fields"), ("0 10 30 2 *", "February")]:
        response = client.patch(
            f"/api/admin/ai/triggers/{ids['app2_daily_prewarm_schedule']}",
            json={"cron_expression": cron},
            headers=admin,
        )
        assert response.status_code == 422, cron
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "cron_expression"] and why in error["msg"], error
    sensor = client.patch(
        f"/api/admin/ai/triggers/{ids['ai_events_sensor']}", json={"cron_expression": "0 9 * * *"}, headers=admin
    )
    assert sensor.status_code == 422
    (error,) = sensor.json()["detail"]
    assert error["loc"] == ["body", "cron_expression"] and "ai_events_sensor is a sensor" in error["msg"]
    fixed = client.patch(f"/api/admin/ai/triggers/{ids['other']}", json={"cron_expression": "0 9 * * *"}, headers=admin)
    assert fixed.status_code == 409 and "fixed in code" in fixed.json()["detail"]
    assert _saved(db_url) == []


def test_a_cron_is_saved_while_dagster_is_away_and_says_when_it_applies(client: TestClient, db_url: str, admin) -> None:
    ids = _known(db_url)
    prewarm = ids["app2_daily_prewarm_schedule"]
    # Starting or stopping needs Dagster: 503, and nothing of the request is saved.
    both = client.patch(
        f"/api/admin/ai/triggers/{prewarm}", json={"status": "enabled", "cron_expression": "0 9 * * *"}, headers=admin
    )
    assert both.status_code == 503 and _saved(db_url) == []

    response = client.patch(
        f"/api/admin/ai/triggers/{prewarm}",
        json={"cron_expression": " 30  9 * * * ", "description": "九点半预热"},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    assert "Dagster could not be asked" in response.headers["x-dagster-error"]
    item = response.json()
    assert (item["id"], item["status"], item["description"]) == (prewarm, "unknown", "九点半预热")
    assert item["trigger_config"] == {"saved_cron_expression": "30 9 * * *", "cron_editable": True}
    assert "applies when Dagster next loads the code location" in item["last_error"]
    assert _saved(db_url) == [("app2_daily_prewarm_schedule", "30 9 * * *", "admin-1")]
    # The list says the same.
    listed = {i["id"]: i for i in client.get("/api/admin/ai/triggers", headers=admin).json()}
    assert listed[prewarm]["trigger_config"]["saved_cron_expression"] == "30 9 * * *"
