"""The latest-answer fast path (api.fast_read) answers exactly as its FastAPI route, and only plain successes."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from api.deps import get_principal
from api.main import create_app
from api.settings import Settings
from tests.api.conftest import OTHER_SITE, SITE, bearer, put_cache
from zqyy_assets.core import db
from zqyy_assets.core import tokens as token_store


@pytest.fixture
def tokens(db_url: str, make_token) -> dict[str, dict[str, str]]:
    with db.transaction(db_url) as conn:
        revoked = token_store.issue(conn, subject="gone", role="staff", site_ids=[SITE]).token
        token_store.revoke(conn, token=revoked)
        expired = token_store.issue(
            conn, subject="old", role="staff", site_ids=[SITE], expires_at=datetime.now(UTC) - timedelta(minutes=1)
        ).token
    staff = make_token("staff")
    return {
        "none": {},
        "staff": bearer(staff),
        "staff, lower-case scheme": {"Authorization": f"bearer {staff}"},
        "staff, spaces around the token": {"Authorization": f"Bearer   {staff}  "},
        "admin": bearer(make_token("admin")),
        "other site": bearer(make_token("staff", sites=(OTHER_SITE,))),
        "two sites": bearer(make_token("staff", sites=(SITE, OTHER_SITE))),
        "revoked": bearer(revoked),
        "expired": bearer(expired),
        "unknown": bearer("zqyy_not-a-real-token"),
        "too long": bearer("zqyy_" + "a" * token_store.MAX_TOKEN_LENGTH),
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
        "scheme only": {"Authorization": "Bearer"},
        "staff token, another scheme": {"Authorization": f"Token {staff}"},
    }


PATHS = [
    "/api/ai/cache/app3_clue/7",
    "/api/ai/cache/app3_clue/7?site_id=1",
    "/api/ai/cache/app3_clue/7?site_id=2",
    "/api/ai/cache/app3_clue/7?site_id=3",
    "/api/ai/cache/app3_clue/7?site_id=0",
    "/api/ai/cache/app3_clue/7?site_id=01",
    "/api/ai/cache/app3_clue/7?site_id=9223372036854775808",
    "/api/ai/cache/app3_clue/7?site_id=abc",
    "/api/ai/cache/app3_clue/7?site_id=1&extra=x",
    "/api/ai/cache/app3_clue/7?site_id=1&site_id=2",
    "/api/ai/cache/app3_clue/8",  # only an invalidated answer
    "/api/ai/cache/app3_clue/10",  # only an ungrounded answer
    "/api/ai/cache/app3_clue/9",  # nothing cached
    "/api/ai/cache/app3_clue/07",
    "/api/ai/cache/app3_clue/7%0A",
    "/api/ai/cache/app3_clue/history",
    "/api/ai/cache/app3_clue/7/",
    "/api/ai/cache/app3_clue/7/history",
    "/api/ai/cache/app9_magic/7",
    "/api/ai/cache/app4_analysis/3_7",
    "/api/ai/cache/app4_analysis/7",
    "/api/ai/cache/app2_finance/this_month__all",
    "/api/ai/cache/app2_finance/this_month__vip",
    "/api/ai/cache/app2a_finance_area/this_month__vip",
    "/api/ai/cache/app2a_finance_area/this_month__" + "v" * 120,
]


def _seed(db_url: str) -> None:
    put_cache(
        db_url,
        site=SITE,
        app="app3_clue",
        target="7",
        result={"clues": [{"summary": "周末下午常来"}]},
        score=7.5,
        run_id="run-7",
    )
    put_cache(db_url, site=SITE, app="app3_clue", target="7", result={"old": True}, status="invalidated")
    put_cache(db_url, site=OTHER_SITE, app="app3_clue", target="7", result={"who": "site 2"})
    put_cache(db_url, site=SITE, app="app3_clue", target="8", result={}, status="invalidated")
    put_cache(db_url, site=SITE, app="app4_analysis", target="3_7", result={"analysis": "稳定"})
    put_cache(db_url, site=SITE, app="app2_finance", target="this_month__all", result={"insights": [{"t": "全店"}]})
    put_cache(  # newer, but ungrounded: kept in the history, never served
        db_url,
        site=SITE,
        app="app2_finance",
        target="this_month__all",
        result={"insights": [{"t": "编造"}]},
        status="ungrounded",
        created_at="2099-01-01T00:00+00",
    )
    put_cache(db_url, site=SITE, app="app3_clue", target="10", result={}, status="ungrounded")
    put_cache(db_url, site=SITE, app="app2a_finance_area", target="this_month__vip", result={"insights": []})
    # Rows no request may reach (the route's path rules say 422): the fast path must not find them either.
    put_cache(db_url, site=SITE, app="app3_clue", target="7\n", result={"unreachable": True})
    put_cache(
        db_url, site=SITE, app="app2a_finance_area", target="this_month__" + "v" * 120, result={"unreachable": True}
    )


def test_every_request_is_answered_as_the_route_answers_it(api_settings: Settings, db_url: str, tokens) -> None:
    _seed(db_url)
    with TestClient(create_app(api_settings)) as fast, TestClient(create_app(api_settings, fast_read=False)) as route:
        statuses = set()
        for path in PATHS:
            for who, headers in tokens.items():
                got, want = fast.get(path, headers=headers), route.get(path, headers=headers)
                case = f"{path} as {who}"
                assert got.status_code == want.status_code, (case, got.text, want.text)
                assert got.content == want.content, case
                for header in ("content-type", "content-length", "www-authenticate"):
                    assert got.headers.get(header) == want.headers.get(header), (case, header)
                statuses.add(got.status_code)
        for method in ("HEAD", "POST"):
            got, want = (c.request(method, PATHS[0], headers=tokens["staff"]) for c in (fast, route))
            assert (got.status_code, got.content) == (want.status_code, want.content) and got.status_code == 405
    assert statuses == {200, 401, 403, 404, 422}


@pytest.fixture
def route_refuses(api_settings: Settings) -> TestClient:
    """An app whose latest-answer route cannot answer (its auth dependency says 418): what still
    succeeds was answered by the fast path."""

    async def refuse() -> None:
        raise HTTPException(418, detail="the route answered")

    app = create_app(api_settings)
    app.dependency_overrides[get_principal] = refuse
    with TestClient(app) as client:
        yield client


def test_only_plain_successes_take_the_fast_path(route_refuses: TestClient, db_url: str, tokens) -> None:
    _seed(db_url)
    fast = {
        ("/api/ai/cache/app3_clue/7", "staff"),
        ("/api/ai/cache/app3_clue/7?site_id=1", "admin"),
        ("/api/ai/cache/app3_clue/7?site_id=2", "two sites"),
        ("/api/ai/cache/app4_analysis/3_7", "staff"),
        ("/api/ai/cache/app2_finance/this_month__all", "staff, lower-case scheme"),
    }
    for path, who in fast:
        response = route_refuses.get(path, headers=tokens[who])
        assert response.status_code == 200, (path, who, response.text)
        assert response.headers["content-type"] == "application/json"
    refused = [
        ("/api/ai/cache/app3_clue/7", "none"),
        ("/api/ai/cache/app3_clue/7", "revoked"),
        ("/api/ai/cache/app3_clue/7?site_id=1", "other site"),
        ("/api/ai/cache/app3_clue/7", "two sites"),
        ("/api/ai/cache/app3_clue/9", "staff"),
        ("/api/ai/cache/app3_clue/8", "staff"),
        ("/api/ai/cache/app3_clue/07", "staff"),
        ("/api/ai/cache/app3_clue/7?site_id=1&extra=x", "staff"),
        ("/api/ai/cache/app2_finance/this_month__vip", "staff"),
    ]
    for path, who in refused:
        assert route_refuses.get(path, headers=tokens[who]).status_code == 418, (path, who)
    # HEAD (405, as the route has no HEAD) and the history are never the fast path's.
    assert route_refuses.head("/api/ai/cache/app3_clue/7", headers=tokens["staff"]).status_code == 405
    assert route_refuses.get("/api/ai/cache/app3_clue/7/history", headers=tokens["staff"]).status_code == 418


def test_a_database_error_on_the_fast_path_is_a_500_as_on_the_route(
    api_settings: Settings, db_url: str, make_token
) -> None:
    _seed(db_url)
    headers = bearer(make_token("staff"))
    for fast_read in (True, False):
        with TestClient(create_app(api_settings, fast_read=fast_read), raise_server_exceptions=False) as client:
            assert client.get("/api/ai/cache/app3_clue/7", headers=headers).status_code == 200
            with db.connect(db_url, autocommit=True) as conn:
                conn.execute("ALTER TABLE biz.ai_cache RENAME TO ai_cache_gone")
            try:
                assert client.get("/api/ai/cache/app3_clue/7", headers=headers).status_code == 500
            finally:
                with db.connect(db_url, autocommit=True) as conn:
                    conn.execute("ALTER TABLE biz.ai_cache_gone RENAME TO ai_cache")


def test_the_route_still_documents_the_read(api_settings: Settings) -> None:
    """The fast path answers without the route, but the OpenAPI document is the route's."""
    spec = create_app(api_settings).openapi()
    get = spec["paths"]["/api/ai/cache/{app_type}/{target_id}"]["get"]
    ok = get["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/CacheEntry"}
    assert {code for code in get["responses"]} >= {"200", "401", "403", "404", "422"}
    assert {p["name"] for p in get["parameters"]} == {"app_type", "target_id", "site_id"}
    assert get["security"] == [{"HTTPBearer": []}]
