"""Run logs: the site's LLM calls from the ledger, list and detail."""

from fastapi.testclient import TestClient

from tests.api.conftest import OTHER_SITE, SITE, bearer, put_call
from zqyy_assets.core import db


def _target(db_url: str, call_id: int, target: str, prompt: str = "{}") -> None:
    with db.transaction(db_url) as conn:
        conn.execute(
            "UPDATE biz.ai_call_ledger SET target_id = %s, request_prompt = %s, response_text = 'ok' WHERE id = %s",
            (target, prompt, call_id),
        )


def test_list_and_detail(client: TestClient, db_url: str, admin, make_token) -> None:
    first = put_call(
        db_url,
        site=SITE,
        app="app3_clue",
        tokens_in=100,
        tokens_out=20,
        latency_ms=300,
        called_at="2026-05-01T10:00+08",
        cost_cny=0.00012,
    )
    _target(db_url, first, "42", '{"member": 42}')
    pair = put_call(db_url, site=SITE, app="app4_analysis", status="failed", called_at="2026-05-02T10:00+08")
    _target(db_url, pair, "7_42")
    finance = put_call(db_url, site=SITE, app="app2_finance", status="budget_exceeded", called_at="2026-05-03T10:00+08")
    _target(db_url, finance, "this_month__all")
    elsewhere = put_call(db_url, site=OTHER_SITE, app="app3_clue")

    body = client.get("/api/admin/ai/run-logs", headers=admin).json()
    assert body["total"] == 3
    assert [(i["id"], i["member_id"], i["target_id"]) for i in body["items"]] == [
        (finance, None, "this_month__all"),
        (pair, 42, "7_42"),
        (first, 42, "42"),
    ]
    assert body["items"][2] | {"created_at": None} == {
        "id": first,
        "app_type": "app3_clue",
        "trigger_type": "event",
        "member_id": 42,
        "target_id": "42",
        "tokens_used": 120,
        "cost_cny": 0.00012,
        "latency_ms": 300,
        "status": "success",
        "site_id": SITE,
        "created_at": None,
        "dagster_run_id": None,
        "dagster_run_url": None,
    }
    assert [i["id"] for i in client.get("/api/admin/ai/run-logs?status=failed", headers=admin).json()["items"]] == [
        pair
    ]
    assert client.get("/api/admin/ai/run-logs?app_type=app2_finance", headers=admin).json()["total"] == 1
    ranged = client.get("/api/admin/ai/run-logs?date_from=2026-05-01&date_to=2026-05-02", headers=admin).json()
    assert [i["id"] for i in ranged["items"]] == [pair, first]

    detail = client.get(f"/api/admin/ai/run-logs/{first}", headers=admin).json()
    assert (detail["request_prompt"], detail["response_text"], detail["provider"]) == (
        '{"member": 42}',
        "ok",
        "dashscope",
    )
    assert client.get("/api/admin/ai/run-logs/999999", headers=admin).status_code == 404
    assert client.get(f"/api/admin/ai/run-logs/{elsewhere}", headers=admin).status_code == 403
    assert client.get(f"/api/admin/ai/run-logs/{first}", headers=bearer(make_token("staff"))).status_code == 403


def test_trigger_type_filter_paging_and_the_dagster_run_link(client: TestClient, db_url: str, admin) -> None:
    ids = [put_call(db_url, site=SITE, app="app3_clue", called_at=f"2026-05-0{day}T10:00+08") for day in range(1, 6)]
    with db.transaction(db_url) as conn:
        conn.execute(
            "UPDATE biz.ai_call_ledger SET trigger_type = 'admin_batch', dagster_run_id = 'run-' || id "
            "WHERE id = ANY(%s)",
            (ids[:2],),
        )
    batch = client.get("/api/admin/ai/run-logs?trigger_type=admin_batch", headers=admin).json()
    assert [i["id"] for i in batch["items"]] == [ids[1], ids[0]]
    # The Dagster UI URL defaults to the GraphQL URL's host (DAGSTER_UI_URL overrides it).
    assert batch["items"][0]["dagster_run_url"] == f"http://127.0.0.1:9/runs/run-{ids[1]}"
    detail = client.get(f"/api/admin/ai/run-logs/{ids[0]}", headers=admin).json()
    assert (detail["dagster_run_id"], detail["dagster_run_url"]) == (
        f"run-{ids[0]}",
        f"http://127.0.0.1:9/runs/run-{ids[0]}",
    )
    assert detail["session_id"] is None and detail["finished_at"] is not None and detail["error_message"] is None

    pages = [
        client.get(f"/api/admin/ai/run-logs?page={page}&page_size=2", headers=admin).json() for page in (1, 2, 3, 4)
    ]
    assert [[i["id"] for i in p["items"]] for p in pages] == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]], []]
    assert {(p["total"], p["page_size"]) for p in pages} == {(5, 2)} and [p["page"] for p in pages] == [1, 2, 3, 4]
    filtered = client.get(
        "/api/admin/ai/run-logs?trigger_type=event&date_from=2026-05-04&page_size=1", headers=admin
    ).json()
    assert (filtered["total"], [i["id"] for i in filtered["items"]]) == (2, [ids[4]])
    for bad in (
        "page=0",
        "page_size=101",
        "status=nope",
        "app_type=App%203",
        "date_from=2026-05-03&date_to=2026-05-01",
    ):
        assert client.get(f"/api/admin/ai/run-logs?{bad}", headers=admin).status_code == 422, bad


def test_every_status_of_the_admin_web_filters_and_others_are_422_naming_them(
    client: TestClient, db_url: str, admin
) -> None:
    statuses = ("success", "failed", "timeout", "circuit_open", "rate_limited", "budget_exceeded", "running")
    ids = {status: put_call(db_url, site=SITE, app="app3_clue", status=status) for status in statuses}
    for status in statuses:
        items = client.get(f"/api/admin/ai/run-logs?status={status}", headers=admin).json()["items"]
        assert [(i["id"], i["status"]) for i in items] == [(ids[status], status)]
    refused = client.get("/api/admin/ai/run-logs?status=pending", headers=admin)
    assert refused.status_code == 422 and all(s in refused.text for s in statuses)
