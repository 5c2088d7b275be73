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
