"""Event intake: 202 with an id and the venue's business date; 422 naming the field."""

from fastapi.testclient import TestClient

from tests.api.conftest import SITE
from zqyy_assets.core import db


def test_post_event_is_queued_with_its_business_date(client: TestClient, db_url: str, staff) -> None:
    body = {
        "event_type": "consumption",
        "site_id": SITE,
        "member_id": 7,
        "assistant_id": 3,
        "occurred_at": "2026-03-02T03:30:00+08:00",
        "payload": {"settlement_id": 991, "note": "包厢"},
    }
    response = client.post("/api/ai/events", json=body, headers=staff)
    assert response.status_code == 202
    accepted = response.json()
    # 03:30 is before the 06:00 cut-off: the business day that started on March 1st.
    assert accepted == {
        "id": accepted["id"],
        "event_type": "consumption",
        "site_id": SITE,
        "biz_date": "2026-03-01",
        "status": "pending",
        "is_forced": False,
    }
    with db.connect(db_url) as conn:
        row = conn.execute("SELECT * FROM biz.ai_events WHERE id = %s", (accepted["id"],)).fetchone()
    assert (row["member_id"], row["assistant_id"], row["payload"], row["source"], row["is_forced"]) == (
        7,
        3,
        {"settlement_id": 991, "note": "包厢"},
        "api",
        False,
    )
    status = client.get(f"/api/ai/events/{accepted['id']}", headers=staff).json()
    assert status["status"] == "pending" and status["dagster_run_ids"] == []
    assert client.get("/api/ai/events/999999", headers=staff).status_code == 404


def test_invalid_bodies_are_422_naming_the_field(client: TestClient, staff) -> None:
    cases = [
        ({"event_type": "consumption", "site_id": SITE}, ["body", "member_id"]),
        ({"event_type": "task_assigned", "site_id": SITE, "member_id": 7}, ["body", "assistant_id"]),
        ({"event_type": "birthday", "site_id": SITE}, ["body", "event_type"]),
        ({"event_type": "dws_completed"}, ["body", "site_id"]),
        ({"event_type": "dws_completed", "site_id": 0}, ["body", "site_id"]),
        ({"event_type": "dws_completed", "site_id": 2**63}, ["body", "site_id"]),
        (
            {"event_type": "dws_completed", "site_id": SITE, "occurred_at": "2026-03-02T03:30:00"},
            ["body", "occurred_at"],
        ),
        (
            {"event_type": "dws_completed", "site_id": SITE, "occurred_at": "0001-01-01T00:00:00Z"},
            ["body", "occurred_at"],
        ),
        ({"event_type": "dws_completed", "site_id": SITE, "payload": {"x": "a\u0000b"}}, ["body", "payload"]),
        ({"event_type": "dws_completed", "site_id": SITE, "payload": {"x": "y" * 20_000}}, ["body", "payload"]),
        ({"event_type": "dws_completed", "site_id": SITE, "is_forced": True}, ["body", "is_forced"]),
    ]
    for body, loc in cases:
        response = client.post("/api/ai/events", json=body, headers=staff)
        assert response.status_code == 422, body
        assert response.json()["detail"][0]["loc"] == loc, (body, response.json())
    response = client.post(
        "/api/ai/events", content=b"{not json", headers={**staff, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
