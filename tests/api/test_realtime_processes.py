"""Realtime across processes: Dagster runs in their own process, the API as uvicorn processes,
a real WebSocket client on loopback.

- a run caches an answer -> ``cache_updated``; a failed run's alert -> ``alert_created``;
- ``since`` after an API restart (what committed while it was down is replayed);
- two API processes (workers) each deliver to their own subscribers.

- an alert raised by the API itself (its chat's LLM call refused upstream) -> ``alert_created``.
"""

from __future__ import annotations

import requests

from api.settings import Settings
from tests.api.conftest import SITE
from tests.api.realtime_support import (
    Ws,
    api_in_thread,
    api_process,
    free_port,
    put_cache,
    run_dagster,
    subscribed,
    wait_until,
)
from tests.defs.ai.venue import load_ai_venue
from zqyy_assets.core import db
from zqyy_assets.core.llm.settings import LLMSettings
from zqyy_assets.testing.fake_dashscope import FAKE_API_KEY, FakeDashScope

EVENTS, ALERTS = f"/ws/ai-events/{SITE}", f"/ws/ai-alerts/{SITE}"


def test_a_dagster_run_in_another_process_caches_and_the_subscriber_is_told(api_settings, db_url, make_token) -> None:
    with db.transaction(db_url) as conn:
        load_ai_venue(conn)
    staff = make_token("staff")
    with api_in_thread(api_settings) as (base, _), Ws.open(f"{base}{EVENTS}?since=0", token=staff) as ws:
        subscribed(db_url, SITE, ws)  # so the answer arrives live, not replayed
        run = run_dagster("answer", db_url, f"{SITE}-100")
        message = ws.next()
        with db.connect(db_url) as conn:
            row = conn.execute("SELECT id, dagster_run_id FROM biz.ai_cache WHERE target_id = '100'").fetchone()
        assert row["dagster_run_id"] == run["run_id"]
        assert message["type"] == "cache_updated" and message["site_id"] == SITE
        assert message["payload"] == {
            "cache_type": "app3_clue",
            "target_id": "100",
            "triggered_by": "consumption",
            "cache_id": row["id"],
        }


def test_an_alert_raised_by_a_run_arrives_on_both_channels(api_settings, db_url, make_token) -> None:
    admin = make_token("admin")
    with (
        api_in_thread(api_settings) as (base, app),
        Ws.open(f"{base}{ALERTS}?since=0", token=admin) as alerts,
        Ws.open(f"{base}{EVENTS}?since=0", token=admin, via="query") as events,
    ):
        subscribed(db_url, SITE, events)  # live, not replayed: both subscriptions are registered
        wait_until(lambda: app.state.realtime.subscriber_count() == 2, what="both subscriptions")
        run = run_dagster("alert", db_url, f"{SITE}-100")
        for ws in (alerts, events):
            message = ws.next()
            assert (message["type"], message["site_id"]) == ("alert_created", SITE)
            payload = message["payload"]
            assert (payload["app_type"], payload["alert_type"], payload["dagster_run_id"]) == (
                "app3_clue",
                "failed",
                run["run_id"],
            )
            assert "InvalidApiKey" in payload["message"] and isinstance(payload["alert_id"], int)
            assert "log_id" in payload


def test_an_alert_raised_by_the_api_arrives(api_settings, db_url, make_token) -> None:
    admin, staff = make_token("admin"), make_token("staff", subject="assistant-1")
    with FakeDashScope() as fake:
        llm = LLMSettings(api_key=FAKE_API_KEY, base_url=fake.base_url, app_ids={"app1_chat": "fake-app1_chat"})
        fake.script("app1_chat", ["data_inspection"])
        settings = Settings(**{**api_settings.model_dump(exclude={"llm"}), "llm": llm})
        with api_in_thread(settings) as (base, app), Ws.open(f"{base}{ALERTS}?since=0", token=admin) as alerts:
            wait_until(lambda: app.state.realtime.subscriber_count() == 1, what="the subscription")
            http = base.replace("ws://", "http://")
            me = {"Authorization": f"Bearer {staff}"}
            chat = requests.get(f"{http}/api/xcx/chat/messages?contextType=member&contextId=7", headers=me, timeout=30)
            url = f"{http}/api/xcx/chat/{chat.json()['chatId']}/messages"
            requests.post(url, json={"content": "敏感话题"}, headers=me, timeout=30)  # the upstream refuses it
            message = alerts.next()
    with db.connect(db_url) as conn:
        row = conn.execute("SELECT id, ledger_id FROM biz.ai_alerts WHERE app_type = 'app1_chat'").fetchone()
    assert (message["type"], message["site_id"]) == ("alert_created", SITE)
    payload = message["payload"]
    assert (payload["app_type"], payload["alert_type"], payload["alert_id"]) == ("app1_chat", "failed", row["id"])
    assert payload["log_id"] == row["ledger_id"] and "DataInspectionFailed" in payload["message"]


def test_since_replays_what_committed_while_the_api_was_down(db_url, make_token) -> None:
    admin = make_token("admin")
    port = free_port()
    with api_process(db_url, port) as (base, _), Ws.open(f"{base}{EVENTS}?since=0", token=admin) as ws:
        put_cache(db_url, SITE, "a")
        assert ws.next()["payload"]["target_id"] == "a"
    # The API is stopped: these commit with no API running.
    put_cache(db_url, SITE, "b", rows=2)
    with api_process(db_url, port) as (base, _), Ws.open(f"{base}{EVENTS}?since=1", token=admin) as ws:
        replayed = ws.take(2)
        assert [(m["seq"], m["payload"]["target_id"]) for m in replayed] == [(2, "b"), (3, "b-2")]
        put_cache(db_url, SITE, "c")
        assert ws.next()["seq"] == 4


def test_two_api_processes_both_deliver(db_url, make_token) -> None:
    staff = make_token("staff")
    with (
        api_process(db_url) as (first, _),
        api_process(db_url) as (second, _),
        Ws.open(f"{first}{EVENTS}?since=0", token=staff) as one,
        Ws.open(f"{second}{EVENTS}?since=0", token=staff, via="subprotocol") as two,
        Ws.open(f"{second}{EVENTS}?since=0", token=staff, via="query") as three,
    ):
        # Served as deployed (api.serving): the client offers permessage-deflate, the server declines.
        assert "permessage-deflate" in one.conn.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in one.conn.response.headers
        subscribed(db_url, SITE, one, two, three)  # seq 1; then the answer goes out live from both workers
        [cache_id] = put_cache(db_url, SITE, "x")
        for ws in (one, two, three):
            message = ws.next()
            assert (message["seq"], message["payload"]["cache_id"]) == (2, cache_id)
