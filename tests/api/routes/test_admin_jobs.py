"""Events as trigger jobs: the list with run statuses and skipped duplicates, detail, retry, manual trigger."""

from datetime import UTC, datetime

from fastapi.testclient import TestClient

from tests.api.conftest import OTHER_SITE, SITE
from zqyy_assets.core import db
from zqyy_assets.core.business_date import business_date


def _event(
    db_url: str,
    *,
    site: int = SITE,
    event_type: str = "consumption",
    status: str = "pending",
    created_at: str | None = None,
    run_ids: list[str] | None = None,
    biz_date=None,
) -> int:
    with db.transaction(db_url) as conn:
        return conn.execute(
            """INSERT INTO biz.ai_events (event_type, site_id, member_id, biz_date, status, dagster_run_ids, created_at)
               VALUES (%s, %s, 7, COALESCE(%s, current_date), %s, %s, COALESCE(%s::timestamptz, now())) RETURNING id""",
            (event_type, site, biz_date, status, run_ids or [], created_at),
        ).fetchone()["id"]


def test_trigger_event_is_forced_by_default(client: TestClient, db_url: str, admin) -> None:
    response = client.post(
        "/api/admin/ai/trigger-event",
        json={"event_type": "note_created", "site_id": SITE, "member_id": 7, "payload": {"note_id": 3}},
        headers=admin,
    )
    assert response.status_code == 202
    job = response.json()
    assert job["status"] == "pending"
    detail = client.get(f"/api/admin/ai/trigger-jobs/{job['trigger_job_id']}", headers=admin).json()
    assert (detail["is_forced"], detail["source"], detail["payload"], detail["member_id"]) == (
        True,
        "admin",
        {"note_id": 3},
        7,
    )
    unforced = client.post(
        "/api/admin/ai/trigger-event",
        json={"event_type": "dws_completed", "site_id": SITE, "is_forced": False},
        headers=admin,
    ).json()
    assert (
        client.get(f"/api/admin/ai/trigger-jobs/{unforced['trigger_job_id']}", headers=admin).json()["is_forced"]
        is False
    )
    missing = client.post(
        "/api/admin/ai/trigger-event", json={"event_type": "consumption", "site_id": SITE}, headers=admin
    )
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "member_id"]


def test_list_with_filters_runs_and_todays_skipped_duplicates(client: TestClient, db_url: str, admin) -> None:
    today = business_date(datetime.now(UTC))
    old = _event(db_url, created_at="2026-01-05T12:00+08", biz_date="2026-01-05", status="completed")
    launched = _event(db_url, status="running", run_ids=["run-a", "run-b"])
    _event(db_url, status="skipped_duplicate", biz_date=today)
    _event(db_url, status="skipped_duplicate", biz_date=today, event_type="note_created")
    _event(db_url, status="skipped_duplicate", biz_date="2026-01-05")
    _event(db_url, site=OTHER_SITE, status="skipped_duplicate", biz_date=today)

    body = client.get("/api/admin/ai/trigger-jobs", headers=admin).json()
    assert body["total"] == 5 and body["today_skipped_duplicates"] == 2
    assert {i["site_id"] for i in body["items"]} == {SITE}
    item = next(i for i in body["items"] if i["id"] == launched)
    # Dagster is not running here: the runs are listed, their status unknown, and the reason given.
    assert item["runs"] == [
        {"run_id": "run-a", "status": None, "url": "http://127.0.0.1:9/runs/run-a"},
        {"run_id": "run-b", "status": None, "url": "http://127.0.0.1:9/runs/run-b"},
    ]
    assert "Dagster" in body["runs_error"]
    assert [
        i["id"] for i in client.get("/api/admin/ai/trigger-jobs?status=completed", headers=admin).json()["items"]
    ] == [old]
    assert client.get("/api/admin/ai/trigger-jobs?event_type=note_created", headers=admin).json()["total"] == 1
    ranged = client.get("/api/admin/ai/trigger-jobs?date_from=2026-01-05&date_to=2026-01-05", headers=admin).json()
    assert [i["id"] for i in ranged["items"]] == [old]
    paged = client.get("/api/admin/ai/trigger-jobs?page=2&page_size=4", headers=admin).json()
    assert len(paged["items"]) == 1 and paged["total"] == 5
    for bad in ("date_from=2026-02-01&date_to=2026-01-01", "date_from=1900-01-01", "status=launched", "page_size=1000"):
        assert client.get(f"/api/admin/ai/trigger-jobs?{bad}", headers=admin).status_code == 422, bad


def test_every_status_of_the_admin_web_filters_and_others_are_422_naming_them(
    client: TestClient, db_url: str, admin
) -> None:
    statuses = ("pending", "running", "completed", "failed", "skipped_duplicate")
    ids = {status: _event(db_url, status=status) for status in statuses}
    for status in statuses:
        items = client.get(f"/api/admin/ai/trigger-jobs?status={status}", headers=admin).json()["items"]
        assert [(i["id"], i["status"]) for i in items] == [(ids[status], status)]
    refused = client.get("/api/admin/ai/trigger-jobs?status=launched", headers=admin)
    assert refused.status_code == 422 and all(s in refused.text for s in statuses)


def test_retry_queues_a_forced_copy(client: TestClient, db_url: str, admin) -> None:
    original = _event(db_url, status="failed", biz_date="2026-01-05")
    response = client.post(f"/api/admin/ai/trigger-jobs/{original}/retry", headers=admin)
    assert response.status_code == 202
    retry = client.get(f"/api/admin/ai/trigger-jobs/{response.json()['trigger_job_id']}", headers=admin).json()
    assert (retry["retry_of"], retry["is_forced"], retry["source"], retry["biz_date"], retry["status"]) == (
        original,
        True,
        "retry",
        "2026-01-05",
        "pending",
    )
    assert client.post("/api/admin/ai/trigger-jobs/999999/retry", headers=admin).status_code == 404
