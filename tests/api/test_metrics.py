"""``/metrics``: scraped over HTTP and read with prometheus_client's own parser.

The request histograms are this process's (prometheus_client's values live as long as the
process, across tests): each test reads them before and after, or uses labels of its own. The
LLM, budget, breaker and inbox figures are written into Postgres as the other processes write them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_app
from api.metrics import Metrics
from api.settings import Settings
from tests.api.conftest import SITE, bearer, put_cache, put_call
from tests.api.realtime_support import wait_until
from zqyy_assets.core import db
from zqyy_assets.core.settings import DatabaseSettings

CACHE_ROUTE = "/api/ai/cache/{app_type}/{target_id}"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: TestClient, headers: dict[str, str]) -> Samples:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def requests_of(samples: Samples, route: str, status: str, method: str = "GET") -> float:
    labels = {"method": method, "route": route, "status": status}
    return value(samples, "zqyy_http_request_duration_seconds_count", **labels)


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


def test_metrics_need_an_admin_token(client: TestClient, admin, staff) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=staff).status_code == 403
    assert value(scrape(client, admin), "zqyy_metrics_db_up") == 1
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_requests_are_counted_by_route_template_fast_path_included(client: TestClient, db_url, admin, staff) -> None:
    for member in (1, 2, 3):
        put_cache(db_url, site=SITE, app="app3_clue", target=str(member), result={"clues": []})
    before = scrape(client, admin)
    for member in (1, 2, 3):  # answered by the fast path (api.fast_read), outside FastAPI's routing
        assert client.get(f"/api/ai/cache/app3_clue/{member}", headers=staff).status_code == 200
    for member in (7, 8):  # nothing cached: the route answers 404
        assert client.get(f"/api/ai/cache/app3_clue/{member}", headers=staff).status_code == 404
    assert client.get("/no/such/path/42").status_code == 404
    after = scrape(client, admin)

    assert requests_of(after, CACHE_ROUTE, "200") - requests_of(before, CACHE_ROUTE, "200") == 3
    assert requests_of(after, CACHE_ROUTE, "404") - requests_of(before, CACHE_ROUTE, "404") == 2
    assert requests_of(after, "<unmatched>", "404") - requests_of(before, "<unmatched>", "404") == 1
    assert requests_of(after, "/metrics", "200") - requests_of(before, "/metrics", "200") == 1
    # the histogram's buckets hold every request: +Inf equals the count
    inf = value(
        after, "zqyy_http_request_duration_seconds_bucket", method="GET", route=CACHE_ROUTE, status="200", le="+Inf"
    )
    assert inf == requests_of(after, CACHE_ROUTE, "200")
    routes = {dict(labels).get("route") for name, labels in after if name.startswith("zqyy_http_")}
    assert not any(route and "app3_clue" in route for route in routes), routes  # never the raw path


def test_llm_budget_breaker_inbox_and_memo_figures_come_from_postgres(
    client: TestClient, db_url, admin, api_settings
) -> None:
    put_call(db_url, site=SITE, app="app3_clue", tokens_in=100, tokens_out=50)
    put_call(db_url, site=SITE, app="app3_clue", tokens_in=100, tokens_out=50)
    put_call(db_url, site=SITE, app="app3_clue", status="failed", tokens_in=10)
    put_call(db_url, site=SITE, app="app2_finance", status="budget_exceeded")
    put_call(db_url, site=2, app="app3_clue", tokens_in=7, tokens_out=3)
    with db.transaction(db_url) as conn:
        conn.execute(
            """INSERT INTO biz.ai_circuit_breaker (app_name, state, consecutive_failures, opened_at)
               VALUES ('app4_analysis', 'open', 5, now())"""
        )
        conn.execute(
            """INSERT INTO biz.ai_events (event_type, site_id, member_id, biz_date, created_at)
               VALUES ('consumption', 1, 100, current_date, now() - interval '120 seconds'),
                      ('consumption', 1, 101, current_date, now() - interval '30 seconds')"""
        )
        conn.execute(
            """INSERT INTO biz.ai_memo_hits (site_id, app_name, target_id, trigger_type, tokens_in_avoided,
                                             tokens_out_avoided, hit_at)
               SELECT 1, 'app3_clue', '100', 'event', 100, 50, now() - n * interval '1 hour'
               FROM generate_series(1, 5) n"""
        )
    s = scrape(client, admin)

    assert value(s, "zqyy_llm_calls_total", app="app3_clue", site="1", status="success") == 2
    assert value(s, "zqyy_llm_calls_total", app="app3_clue", site="1", status="failed") == 1
    assert value(s, "zqyy_llm_calls_total", app="app2_finance", site="1", status="budget_exceeded") == 1
    assert value(s, "zqyy_llm_calls_total", app="app3_clue", site="2", status="success") == 1
    tokens = {"app": "app3_clue", "site": "1", "status": "success"}
    assert value(s, "zqyy_llm_tokens_total", **tokens, direction="in") == 200
    assert value(s, "zqyy_llm_tokens_total", **tokens, direction="out") == 100

    assert value(s, "zqyy_memo_hits_total", app="app3_clue", site="1") == 5
    assert value(s, "zqyy_memo_tokens_saved_total", app="app3_clue", site="1") == 750

    used, limit = 200 + 100 + 10 + 10, api_settings.llm.daily_token_limit
    assert value(s, "zqyy_llm_budget_tokens", period="day", kind="used") == used
    assert value(s, "zqyy_llm_budget_tokens", period="day", kind="limit") == limit
    assert value(s, "zqyy_llm_budget_tokens", period="day", kind="left") == limit - used
    month_limit = api_settings.llm.monthly_token_limit
    assert value(s, "zqyy_llm_budget_tokens", period="month", kind="left") == month_limit - used

    assert value(s, "zqyy_llm_breaker_state", app="app4_analysis", state="open") == 1
    assert value(s, "zqyy_llm_breaker_state", app="app4_analysis", state="closed") == 0
    assert value(s, "zqyy_llm_breaker_consecutive_failures", app="app4_analysis") == 5
    assert value(s, "zqyy_llm_breaker_state", app="app5_tactics", state="closed") == 1  # never failed: no row

    assert value(s, "zqyy_inbox_pending_events") == 2
    assert 120 <= value(s, "zqyy_inbox_oldest_pending_age_seconds") < 120 + 60


def test_websocket_subscribers_are_a_gauge(client: TestClient, make_token, admin) -> None:
    subscriber = bearer(make_token("admin", subject="watcher"))
    labels = {"channel": "events", "site": str(SITE)}
    assert value(scrape(client, admin), "zqyy_ws_subscribers", **labels) == 0
    with client.websocket_connect(f"/ws/ai-events/{SITE}", headers=subscriber):
        wait_until(lambda: value(scrape(client, admin), "zqyy_ws_subscribers", **labels) == 1, 10, "the gauge at 1")
    wait_until(lambda: value(scrape(client, admin), "zqyy_ws_subscribers", **labels) == 0, 10, "the gauge back at 0")


def test_a_database_away_gives_db_up_0_and_the_process_metrics(api_settings: Settings) -> None:
    away = api_settings.model_copy(
        update={"database": DatabaseSettings(database_url="postgresql://nobody@127.0.0.1:9/zqyy")}
    )
    text = Metrics(away).scrape().decode()
    assert value(parse(text), "zqyy_metrics_db_up") == 0
    families = {family.name for family in text_string_to_metric_families(text)}
    assert not any(name.startswith("zqyy_llm_") for name in families)
    assert {"zqyy_http_request_duration_seconds", "zqyy_ws_subscribers"} <= families


def test_metrics_off_means_no_route(api_settings: Settings, admin) -> None:
    with TestClient(create_app(api_settings.model_copy(update={"metrics_enabled": False}))) as off:
        assert off.get("/metrics", headers=admin).status_code == 404
