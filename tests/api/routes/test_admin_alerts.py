"""Alerts: a site's list (plus run-wide ones), acknowledge and ignore."""

from fastapi.testclient import TestClient

from tests.api.conftest import OTHER_SITE, SITE, put_alert
from zqyy_assets.core import db


def test_list_filter_and_page(client: TestClient, db_url: str, admin) -> None:
    apps = ("app3_clue", "app6_note", "app8_consolidation")
    ids = [put_alert(db_url, site=SITE, app=app, created_at=f"2026-05-0{n + 1}T10:00+08") for n, app in enumerate(apps)]
    run_wide = put_alert(db_url, site=None, app="app2_finance", alert_type="timeout", created_at="2026-05-09T10:00+08")
    put_alert(db_url, site=OTHER_SITE)
    body = client.get("/api/admin/ai/alerts?page_size=2", headers=admin).json()
    assert (body["total"], body["page"], body["page_size"]) == (4, 1, 2)
    assert [a["id"] for a in body["items"]] == [run_wide, ids[2]]
    assert body["items"][0] | {"created_at": None} == {
        "id": run_wide,
        "app_type": "app2_finance",
        "status": "timeout",
        "alert_status": "pending",
        "error_message": "boom",
        "created_at": None,
        "last_seen_at": body["items"][0]["created_at"],
        "occurrences": 1,
        "site_id": None,
        "log_id": None,
        "dagster_run_id": None,
        "event_id": None,
    }
    assert [
        a["id"] for a in client.get("/api/admin/ai/alerts?page=2&page_size=2", headers=admin).json()["items"]
    ] == ids[1::-1]
    assert client.get("/api/admin/ai/alerts?alert_status=ignored", headers=admin).json()["total"] == 0
    assert client.get("/api/admin/ai/alerts?alert_status=unknown", headers=admin).status_code == 422


def test_ack_and_ignore(client: TestClient, db_url: str, admin, make_token) -> None:
    first, second = put_alert(db_url, site=SITE), put_alert(db_url, site=SITE, alert_type="timeout")
    assert client.post(f"/api/admin/ai/alerts/{first}/ack", headers=admin).json() == {
        "id": first,
        "alert_status": "acknowledged",
    }
    assert client.post(f"/api/admin/ai/alerts/{second}/ignore", headers=admin).json() == {
        "id": second,
        "alert_status": "ignored",
    }
    with db.connect(db_url) as conn:
        row = conn.execute("SELECT handled_by, handled_at FROM biz.ai_alerts WHERE id = %s", (first,)).fetchone()
    assert row["handled_by"] == "admin-1" and row["handled_at"] is not None
    listed = client.get("/api/admin/ai/alerts?alert_status=pending", headers=admin).json()
    assert listed["total"] == 0
    assert client.post("/api/admin/ai/alerts/999999/ack", headers=admin).status_code == 404
    # A run-wide alert can be handled by any admin.
    run_wide = put_alert(db_url, site=None)
    other_admin = {"Authorization": f"Bearer {make_token('admin', sites=(OTHER_SITE,))}"}
    assert client.post(f"/api/admin/ai/alerts/{run_wide}/ack", headers=other_admin).status_code == 200


def test_pending_filter_counts_handled_ones_out_and_every_filter_value_is_accepted(
    client: TestClient, db_url: str, admin
) -> None:
    open_, handled, dropped = (
        put_alert(db_url, site=SITE, alert_type=t) for t in ("failed", "timeout", "circuit_open")
    )
    client.post(f"/api/admin/ai/alerts/{handled}/ack", headers=admin)
    client.post(f"/api/admin/ai/alerts/{dropped}/ignore", headers=admin)
    listed = {
        value: [
            a["id"] for a in client.get(f"/api/admin/ai/alerts?alert_status={value}", headers=admin).json()["items"]
        ]
        for value in ("pending", "acknowledged", "ignored")
    }
    assert listed == {"pending": [open_], "acknowledged": [handled], "ignored": [dropped]}
    refused = client.get("/api/admin/ai/alerts?alert_status=open", headers=admin)
    assert refused.status_code == 422
    assert all(word in refused.text for word in ("pending", "acknowledged", "ignored"))
