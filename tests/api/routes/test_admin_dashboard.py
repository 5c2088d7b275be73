"""The dashboard's figures from the LLM call ledger, and the account-wide token budget."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi.testclient import TestClient

from tests.api.conftest import OTHER_SITE, SITE, put_alert, put_call, put_memo_hit


def _local_noon(days_ago: int) -> str:
    day = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date() - timedelta(days=days_ago)
    return f"{day}T12:00:00+08:00"


def test_dashboard_figures(client: TestClient, db_url: str, admin) -> None:
    put_call(db_url, site=SITE, app="app3_clue", tokens_in=100, tokens_out=50, latency_ms=200, called_at=_local_noon(0))
    put_call(
        db_url, site=SITE, app="app3_clue", status="failed", tokens_in=10, latency_ms=400, called_at=_local_noon(0)
    )
    put_call(db_url, site=SITE, app="app1_chat", tokens_in=40, tokens_out=60, latency_ms=300, called_at=_local_noon(0))
    put_call(db_url, site=SITE, app="app6_note", status="budget_exceeded", called_at=_local_noon(0))
    put_call(db_url, site=SITE, app="app6_note", tokens_in=1000, latency_ms=100, called_at=_local_noon(2))
    put_call(db_url, site=OTHER_SITE, app="app3_clue", tokens_in=5000, latency_ms=9000, called_at=_local_noon(0))
    alert = put_alert(db_url, site=SITE)

    body = client.get("/api/admin/ai/dashboard", headers=admin).json()
    assert (body["today_calls"], body["today_success_rate"], body["today_tokens"], body["today_avg_latency_ms"]) == (
        4,
        0.5,
        260,
        300.0,
    )
    assert len(body["trend_7d"]) == 7 and body["trend_7d"][-1]["date"] == body["date_to"]
    assert [p["calls"] for p in body["trend_7d"]] == [0, 0, 0, 0, 1, 0, 4]
    assert body["trend_7d"][-1]["success_rate"] == 0.5 and body["trend_7d"][-3]["success_rate"] == 1.0
    assert body["app_distribution"] == [
        {"app_type": "app3_clue", "count": 2, "percentage": 0.5},
        {"app_type": "app1_chat", "count": 1, "percentage": 0.25},
        {"app_type": "app6_note", "count": 1, "percentage": 0.25},
    ]
    health = {h["app_type"]: h["last_status"] for h in body["app_health"]}
    assert health["app3_clue"] in ("success", "failed") and health["app6_note"] == "budget_exceeded"
    assert health["app8_consolidation"] is None and len(body["app_health"]) == 9
    assert [a["id"] for a in body["recent_alerts"]] == [alert]
    # The budget is the whole account's (all sites), as the LLM guards count it.
    assert body["budget"]["daily_used"] == 260 + 5000 and body["budget"]["daily_limit"] == 100_000
    assert body["budget"]["monthly_used"] >= body["budget"]["daily_used"]

    three = client.get("/api/admin/ai/dashboard?range_days=3", headers=admin).json()
    assert (three["today_calls"], three["today_tokens"]) == (5, 1260)
    explicit = client.get(
        f"/api/admin/ai/dashboard?date_from={_local_noon(2)[:10]}&date_to={_local_noon(2)[:10]}", headers=admin
    ).json()
    assert (explicit["today_calls"], explicit["today_tokens"], len(explicit["trend_7d"])) == (1, 1000, 7)
    for bad in (
        f"date_from={_local_noon(2)[:10]}",
        "date_from=2026-02-02&date_to=2026-01-01",
        "range_days=0",
        "date_from=2020-01-01&date_to=2026-01-01",
    ):
        response = client.get(f"/api/admin/ai/dashboard?{bad}", headers=admin)
        assert response.status_code == 422, bad


def test_dashboard_cost_per_app_and_memo_savings(client: TestClient, db_url: str, admin) -> None:
    today, earlier = _local_noon(0), _local_noon(3)
    put_call(db_url, site=SITE, app="app3_clue", tokens_in=1200, tokens_out=340, cost_cny=0.00164, called_at=today)
    put_call(db_url, site=SITE, app="app3_clue", tokens_in=800, tokens_out=200, cost_cny=0.00104, called_at=today)
    put_call(db_url, site=SITE, app="app2_finance", tokens_in=1000, tokens_out=1000, cost_cny=0.012, called_at=today)
    put_call(db_url, site=SITE, app="app2_finance", tokens_in=9, cost_cny=5.0, called_at=earlier)  # outside the range
    put_call(db_url, site=OTHER_SITE, app="app3_clue", tokens_in=9, cost_cny=7.0, called_at=today)  # another site
    put_memo_hit(db_url, site=SITE, app="app3_clue", tokens_in=1000, tokens_out=270, cost_cny=0.00134, hit_at=today)
    put_memo_hit(db_url, site=SITE, app="app7_customer", tokens_in=500, tokens_out=100, cost_cny=0.0006, hit_at=today)
    put_memo_hit(db_url, site=OTHER_SITE, app="app3_clue", tokens_in=1, tokens_out=1, cost_cny=9.0, hit_at=today)

    body = client.get("/api/admin/ai/dashboard", headers=admin).json()

    assert body["today_cost_cny"] == 0.01468 and body["today_tokens"] == 4540
    assert body["cost_by_app"] == [
        {
            "app_type": "app2_finance",
            "calls": 1,
            "tokens": 2000,
            "cost_cny": 0.012,
            "memo_hits": 0,
            "memo_tokens_avoided": 0,
            "memo_cost_avoided_cny": 0.0,
        },
        {
            "app_type": "app3_clue",
            "calls": 2,
            "tokens": 2540,
            "cost_cny": 0.00268,
            "memo_hits": 1,
            "memo_tokens_avoided": 1270,
            "memo_cost_avoided_cny": 0.00134,
        },
        {
            "app_type": "app7_customer",
            "calls": 0,
            "tokens": 0,
            "cost_cny": 0.0,
            "memo_hits": 1,
            "memo_tokens_avoided": 600,
            "memo_cost_avoided_cny": 0.0006,
        },
    ]
    assert body["memo_savings"] == {"hits": 2, "tokens_avoided": 1870, "cost_avoided_cny": 0.00194}
    # The CNY budget counts every site, as the guards do.
    assert body["budget"]["daily_cost_cny"] == 7.01468 and body["budget"]["daily_cost_limit_cny"] is None


def test_run_logs_show_each_calls_cost(client: TestClient, db_url: str, admin) -> None:
    call = put_call(db_url, site=SITE, app="app3_clue", tokens_in=1200, tokens_out=340, cost_cny=0.00164)
    [item] = client.get("/api/admin/ai/run-logs", headers=admin).json()["items"]
    assert (item["id"], item["tokens_used"], item["cost_cny"]) == (call, 1540, 0.00164)
    detail = client.get(f"/api/admin/ai/run-logs/{call}", headers=admin).json()
    assert detail["cost_cny"] == 0.00164


def test_budget(client: TestClient, db_url: str, admin) -> None:
    put_call(db_url, site=SITE, app="app3_clue", tokens_in=20_000, tokens_out=5_000, cost_cny=0.026)
    assert client.get("/api/admin/ai/budget", headers=admin).json() == {
        "daily_used": 25_000,
        "daily_limit": 100_000,
        "daily_pct": 0.25,
        "monthly_used": 25_000,
        "monthly_limit": 2_000_000,
        "monthly_pct": 0.0125,
        "daily_cost_cny": 0.026,
        "daily_cost_limit_cny": None,
        "monthly_cost_cny": 0.026,
        "monthly_cost_limit_cny": None,
    }
