"""The auth matrix: every protected endpoint answers 401 / 403 / 2xx by token, role and site."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from tests.api.conftest import (
    OTHER_SITE,
    SITE,
    bearer,
    put_alert,
    put_cache,
    put_call,
    put_clue,
)
from zqyy_assets.core import db
from zqyy_assets.core import tokens as token_store

# (method, path, body, admin only, site scoped, expected status when allowed).
# "{site}" is the site the request names; "{event}" / "{alert}" / "{call}" are rows of SITE.
ENDPOINTS: list[tuple[str, str, Any, bool, bool, int]] = [
    ("GET", "/api/ai/cache/app3_clue/7?site_id={site}", None, False, True, 200),
    ("GET", "/api/ai/cache/app3_clue/7/history?site_id={site}", None, False, True, 200),
    ("GET", "/api/ai/finance/insights?time_dimension=this_month&area=all&site_id={site}", None, False, True, 200),
    ("GET", "/api/ai/members/7/clues?site_id={site}", None, False, True, 200),
    ("POST", "/api/ai/events", {"event_type": "consumption", "site_id": "{site}", "member_id": 7}, False, True, 202),
    ("GET", "/api/ai/events/{event}?site_id={site}", None, False, True, 200),
    ("GET", "/api/xcx/chat/history?site_id={site}", None, False, True, 200),
    ("GET", "/api/xcx/chat/messages?contextType=general&contextId=&site_id={site}", None, False, True, 200),
    ("GET", "/api/admin/ai/dashboard?site_id={site}", None, True, True, 200),
    ("GET", "/api/admin/ai/budget", None, True, False, 200),
    ("GET", "/api/admin/ai/prewarm/progress?site_id={site}", None, True, True, 200),
    ("POST", "/api/admin/ai/cache/invalidate", {"site_id": "{site}", "app_type": "app6_note"}, True, True, 200),
    ("GET", "/api/admin/ai/alerts?site_id={site}", None, True, True, 200),
    ("POST", "/api/admin/ai/alerts/{alert}/ack", None, True, True, 200),
    ("POST", "/api/admin/ai/alerts/{alert}/ignore", None, True, True, 200),
    ("GET", "/api/admin/ai/trigger-jobs?site_id={site}", None, True, True, 200),
    ("GET", "/api/admin/ai/trigger-jobs/{event}", None, True, True, 200),
    ("POST", "/api/admin/ai/trigger-jobs/{event}/retry", None, True, True, 202),
    ("POST", "/api/admin/ai/trigger-event", {"event_type": "dws_completed", "site_id": "{site}"}, True, True, 202),
    ("POST", "/api/admin/ai/run/app3_clue", {"site_id": "{site}", "member_id": 7}, True, True, 200),
    ("GET", "/api/admin/ai/run-logs?site_id={site}", None, True, True, 200),
    ("GET", "/api/admin/ai/run-logs/{call}", None, True, True, 200),
    # Triggers are the deployment's Dagster sensors and schedules, not a site's. Dagster is a closed
    # port here: the list answers what was seen before; an unknown id is 404 once auth has passed.
    ("GET", "/api/admin/ai/triggers", None, True, False, 200),
    ("PATCH", "/api/admin/ai/triggers/999999", {"status": "enabled"}, True, False, 404),
    ("POST", "/api/admin/ai/batch-run", {"site_id": "{site}", "app_types": ["app2_finance"]}, True, True, 200),
    ("POST", "/api/admin/ai/batch-run/confirm", {"batch_id": "{batch}"}, True, True, 200),
]
IDS = [f"{m} {p.split('?')[0]}" for m, p, *_ in ENDPOINTS]


def _render(value: Any, names: dict[str, Any]) -> Any:
    if isinstance(value, str):
        if value == "{site}":
            return names["site"]
        return value.format(**names)
    if isinstance(value, dict):
        return {k: _render(v, names) for k, v in value.items()}
    return value


@pytest.fixture
def rows(db_url: str, client: TestClient, make_token) -> dict[str, int]:
    """What the endpoints read, at SITE: a cached answer, insights, clues, an alert, an event, a batch
    (with nothing to launch, so its confirmation needs no Dagster)."""
    put_cache(db_url, site=SITE, app="app3_clue", target="7", result={"clues": []})
    put_cache(db_url, site=SITE, app="app2_finance", target="this_month__all", result={"insights": [{"title": "营收"}]})
    put_clue(db_url, site=SITE, member=7, summary="📅 周末常来")
    event = client.post(
        "/api/ai/events",
        json={"event_type": "consumption", "site_id": SITE, "member_id": 7},
        headers=bearer(make_token()),
    ).json()["id"]
    with db.transaction(db_url) as conn:
        batch = conn.execute(
            """INSERT INTO biz.admin_batches (batch_id, site_id, created_by, app_types, member_ids, estimated_calls,
                                              estimated_tokens, plan, expires_at)
               VALUES (gen_random_uuid(), %s, 'test', '{app3_clue}', '{7}', 0, 0, '[]', now() + interval '10 minutes')
               RETURNING batch_id::text""",
            (SITE,),
        ).fetchone()["batch_id"]
    return {
        "event": event,
        "alert": put_alert(db_url, site=SITE),
        "call": put_call(db_url, site=SITE, app="app3_clue"),
        "batch": batch,
    }


def _call(client: TestClient, endpoint, names: dict[str, int], headers: dict[str, str]):
    method, path, body, *_ = endpoint
    return client.request(method, _render(path, names), json=_render(body, names), headers=headers)


def _expect(cases) -> None:
    """Every endpoint is checked, then every mismatch reported at once."""
    wrong = [
        f"{name}: expected {expected}, got {got.status_code} {got.text[:200]}"
        for name, expected, got in cases
        if got.status_code != expected
    ]
    assert not wrong, "\n".join(wrong)


def test_no_token_or_a_bad_one_is_401(client: TestClient, rows) -> None:
    names = {**rows, "site": SITE}
    for headers in ({}, bearer("zqyy_not-a-real-token"), {"Authorization": "Basic dXNlcjpwYXNz"}):
        responses = [
            (name, endpoint, _call(client, endpoint, names, headers))
            for name, endpoint in zip(IDS, ENDPOINTS, strict=True)
        ]
        _expect((name, 401, r) for name, _, r in responses)
        for _, _, response in responses:
            assert response.headers["www-authenticate"] == "Bearer"
            assert "token" in response.json()["detail"]


@pytest.mark.parametrize("role", ["admin", "staff"])
def test_own_site_by_role(client: TestClient, rows, make_token, role) -> None:
    headers = bearer(make_token(role))
    cases = []
    for name, endpoint in zip(IDS, ENDPOINTS, strict=True):
        _, _, _, admin_only, _, allowed = endpoint
        response = _call(client, endpoint, {**rows, "site": SITE}, headers)
        cases.append((name, 403 if role == "staff" and admin_only else allowed, response))
        if role == "staff" and admin_only:
            assert response.json()["detail"] == "admin role required"
    _expect(cases)


@pytest.mark.parametrize("role", ["admin", "staff"])
def test_another_sites_data_is_403(client: TestClient, rows, make_token, role) -> None:
    headers = bearer(make_token(role, sites=(OTHER_SITE,)))
    cases = []
    for name, endpoint in zip(IDS, ENDPOINTS, strict=True):
        _, _, _, admin_only, site_scoped, allowed = endpoint
        response = _call(client, endpoint, {**rows, "site": SITE}, headers)
        if role == "staff" and admin_only:
            cases.append((name, 403, response))
        elif site_scoped:
            cases.append((name, 403, response))
            assert "site" in response.json()["detail"], name
        else:  # the account-wide budget belongs to no site
            cases.append((name, allowed, response))
    _expect(cases)


def test_revoked_and_expired_tokens_are_401(client: TestClient, db_url: str, make_token) -> None:
    token = make_token("admin")
    assert client.get("/api/admin/ai/budget", headers=bearer(token)).status_code == 200
    with db.transaction(db_url) as conn:
        assert token_store.revoke(conn, token=token) == 1
        expired = token_store.issue(
            conn, subject="old", role="admin", site_ids=[SITE], expires_at=datetime.now(UTC) - timedelta(minutes=1)
        ).token
    assert client.get("/api/admin/ai/budget", headers=bearer(token)).status_code == 401
    assert client.get("/api/admin/ai/budget", headers=bearer(expired)).status_code == 401


# The latest answer is read by its fast path (api.fast_read), which checks tokens with the same cache.
@pytest.mark.parametrize("path", ["/api/admin/ai/budget", "/api/ai/cache/app3_clue/7"])
def test_a_verified_token_is_cached_for_the_ttl_only(api_settings, db_url: str, make_token, path: str) -> None:
    put_cache(db_url, site=SITE, app="app3_clue", target="7", result={})
    token = make_token("admin")
    with TestClient(create_app(api_settings.model_copy(update={"auth_cache_ttl_s": 1.0}))) as client:
        now = [1000.0]  # the cache's clock, stepped by hand
        client.app.state.principals.clock = lambda: now[0]
        assert client.get(path, headers=bearer(token)).status_code == 200
        with db.transaction(db_url) as conn:
            token_store.revoke(conn, token=token)
        # Within the TTL this process still trusts its earlier check; after it, the revocation holds.
        now[0] += 0.9
        assert client.get(path, headers=bearer(token)).status_code == 200
        now[0] += 0.2
        assert client.get(path, headers=bearer(token)).status_code == 401


def test_tokens_are_stored_hashed(db_url: str, make_token) -> None:
    token = make_token("staff")
    with db.connect(db_url) as conn:
        row = conn.execute("SELECT token_hash, token_prefix FROM biz.api_tokens").fetchone()
        dump = conn.execute("SELECT string_agg(t::text, ' ') AS all FROM biz.api_tokens t").fetchone()["all"]
    assert token not in dump
    assert row["token_hash"] == token_store.hash_token(token) and len(row["token_hash"]) == 64
    assert token.startswith(row["token_prefix"]) and len(row["token_prefix"]) < len(token) // 3


def test_site_may_be_omitted_only_by_a_single_site_token(client: TestClient, db_url: str, make_token) -> None:
    put_cache(db_url, site=SITE, app="app3_clue", target="7", result={"who": "site 1"})
    put_cache(db_url, site=OTHER_SITE, app="app3_clue", target="7", result={"who": "site 2"})
    single, multi = bearer(make_token("staff")), bearer(make_token("staff", sites=(SITE, OTHER_SITE)))
    assert client.get("/api/ai/cache/app3_clue/7", headers=single).json()["result"] == {"who": "site 1"}
    response = client.get("/api/ai/cache/app3_clue/7", headers=multi)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["query", "site_id"] and "site_id is required" in error["msg"]
    assert client.get("/api/ai/cache/app3_clue/7?site_id=2", headers=multi).json()["result"] == {"who": "site 2"}


def test_health_needs_no_token(client: TestClient) -> None:
    assert client.get("/api/health").status_code == 200
