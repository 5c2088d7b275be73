"""Repeated bad tokens from one client: 401 up to the limit, then 429 with ``Retry-After`` for
whatever it sends (a right token too, the fast path and the realtime channels too), counted across
API workers in Postgres; other clients are served. And: expired and revoked tokens are refused on
every path the API serves, the realtime channels included."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from api.auth_throttle import AuthThrottle
from api.main import create_app
from api.settings import Settings
from tests.api.conftest import SITE, bearer
from tests.api.realtime_support import wait_until
from zqyy_assets.core import db
from zqyy_assets.core import tokens as token_store

READ = "/api/ai/cache/app3_clue/7"  # served by the latest-answer fast path
ROUTE = "/api/admin/ai/dashboard"


def _bad() -> dict[str, str]:
    return bearer(token_store.new_token())  # well-formed, unknown


def _close_code(client: TestClient, path: str, token: str) -> int:
    with (
        client.websocket_connect(path, headers={"Authorization": f"Bearer {token}"}) as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_json()
    return closed.value.code


def test_past_the_limit_every_request_of_the_client_is_429_with_retry_after(api_settings: Settings, make_token) -> None:
    admin = make_token("admin")
    settings = api_settings.model_copy(update={"auth_failures_per_minute": 3})
    with TestClient(create_app(settings)) as client:
        assert [client.get(ROUTE, headers=_bad()).status_code for _ in range(3)] == [401, 401, 401]
        fourth = client.get(READ, headers=_bad())
        assert fourth.status_code == 429 and 1 <= int(fourth.headers["Retry-After"]) <= 60
        assert fourth.json() == {"detail": "too many invalid tokens from this client; retry later"}
        # Blocked, whatever it sends: a right token on a route, on the fast path, on a channel.
        for path in (ROUTE, READ):
            refused = client.get(path, headers=bearer(admin))
            assert refused.status_code == 429 and refused.headers["Retry-After"].isdigit()
        assert _close_code(client, f"/ws/ai-events/{SITE}", admin) == 4429
    # Another client (another address) is served meanwhile.
    with TestClient(create_app(settings), client=("10.1.2.3", 5000)) as other:
        assert other.get(ROUTE, headers=bearer(admin)).status_code == 200


def test_failures_count_once_on_the_fast_path_and_on_the_channels(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"auth_failures_per_minute": 4})
    with TestClient(create_app(settings)) as client:
        # The fast path hands a refusal on to its route: one failure each, not two.
        assert [client.get(READ, headers=_bad()).status_code for _ in range(2)] == [401, 401]
        assert _close_code(client, f"/ws/ai-events/{SITE}", token_store.new_token()) == 4401
        assert client.get(ROUTE, headers=_bad()).status_code == 401  # the fourth
        assert client.get(ROUTE, headers=_bad()).status_code == 429


def test_workers_share_the_count_and_the_block(api_settings: Settings, make_token) -> None:
    """Two apps on one database stand for two workers (or two API processes)."""
    admin = make_token("admin")
    settings = api_settings.model_copy(update={"auth_failures_per_minute": 3, "auth_throttle_refresh_s": 0.05})
    with TestClient(create_app(settings)) as one, TestClient(create_app(settings)) as two:
        assert [one.get(ROUTE, headers=_bad()).status_code for _ in range(2)] == [401, 401]
        assert two.get(ROUTE, headers=_bad()).status_code == 401  # the third, counted with the first two
        assert two.get(ROUTE, headers=_bad()).status_code == 429  # the fourth: over the limit on worker two
        # Worker one blocks the client too, from the shared count, without a failure of its own.
        wait_until(lambda: one.get(ROUTE, headers=bearer(admin)).status_code == 429, 10, "worker one to block it")


def test_limit_zero_turns_it_off(api_settings: Settings) -> None:
    settings = api_settings.model_copy(update={"auth_failures_per_minute": 0})
    with TestClient(create_app(settings)) as client:
        assert {client.get(ROUTE, headers=_bad()).status_code for _ in range(30)} == {401}


def test_a_new_minute_drops_the_old_minutes(api_settings: Settings, db_url: str) -> None:
    with db.transaction(db_url) as conn:
        conn.execute(
            """INSERT INTO biz.auth_failures (client, window_start, failures)
               VALUES ('10.9.9.9', date_trunc('minute', now()) - interval '20 minutes', 50),
                      ('10.9.9.8', date_trunc('minute', now()) - interval '5 minutes', 50)"""
        )
    with TestClient(create_app(api_settings.model_copy(update={"auth_failures_per_minute": 5}))) as client:
        assert client.get(ROUTE, headers=_bad()).status_code == 401
    with db.connect(db_url) as conn:
        rows = conn.execute("SELECT client, failures FROM biz.auth_failures ORDER BY client").fetchall()
    assert [(r["client"], r["failures"]) for r in rows] == [("10.9.9.8", 50), ("testclient", 1)]


def test_a_block_ends_with_its_minute() -> None:
    now = [1000.0]
    throttle = AuthThrottle(3, clock=lambda: now[0])
    throttle._block("10.0.0.1", 12.5)
    assert throttle.retry_after("10.0.0.1") == 13 and throttle.retry_after("10.0.0.2") is None
    now[0] += 12.6
    assert throttle.retry_after("10.0.0.1") is None


# ---- expired and revoked tokens, on every path the API serves ----


def _every_path(app) -> tuple[list[tuple[str, str]], list[str]]:
    """(method, path) of every HTTP operation but the health check, and every WebSocket path,
    with each path parameter set to a plausible value."""

    def fill(path: str) -> str:
        return re.sub(r"\{[^}]+\}", lambda m: "app3_clue" if m.group(0) == "{app_type}" else "1", path)

    routes = []
    for route in app.routes:  # each router is included as one entry; its own routes are inside
        routes += getattr(route, "original_router", None).routes if hasattr(route, "original_router") else [route]
    http, ws = [], []
    for route in routes:
        if isinstance(route, APIRoute) and route.path != "/api/health":
            http += [(method, fill(route.path)) for method in sorted(route.methods or ())]
        elif isinstance(route, APIWebSocketRoute):
            ws.append(fill(route.path))
    return http, ws


def test_expired_and_revoked_tokens_are_refused_on_every_path(api_settings: Settings, db_url: str) -> None:
    with db.transaction(db_url) as conn:
        revoked = token_store.issue(conn, subject="gone", role="admin", site_ids=[SITE]).token
        token_store.revoke(conn, token=revoked)
        expired = token_store.issue(
            conn, subject="old", role="admin", site_ids=[SITE], expires_at=datetime.now(UTC) - timedelta(seconds=1)
        ).token
    app = create_app(api_settings)  # no throttle: it would answer first (it has its own tests above)
    http, ws = _every_path(app)
    assert len(http) >= 30 and len(ws) == 2  # the whole API, not a sample
    accepted = []
    with TestClient(app) as client:
        for token in (expired, revoked):
            for method, path in http:
                answer = client.request(method, path, headers=bearer(token), json={})
                if answer.status_code != 401:
                    accepted.append((method, path, answer.status_code))
            accepted += [(path, code) for path in ws if (code := _close_code(client, path, token)) != 4401]
    assert accepted == []
