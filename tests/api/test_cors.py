"""The admin web from a browser on its own origin: CORS from API_CORS_ORIGINS, preflights as a
browser sends them (Origin + Access-Control-Request-Method + Access-Control-Request-Headers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.api.conftest import SITE, put_cache

ADMIN_WEB = "https://admin.zqyy.example"
PATHS = [
    f"/api/admin/ai/dashboard?site_id={SITE}",
    "/api/admin/ai/triggers/3",
    f"/api/ai/cache/app3_clue/7?site_id={SITE}",
]


def preflight(origin: str, method: str = "GET", headers: str = "authorization") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


@pytest.fixture
def browser_app(api_settings: Settings) -> Iterator[TestClient]:
    settings = api_settings.model_copy(update={"api_cors_origins": f"{ADMIN_WEB}/, https://m.zqyy.example"})
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.mark.parametrize("path", PATHS)
def test_preflight_from_an_allowed_origin_is_answered(browser_app: TestClient, path: str) -> None:
    method = "PATCH" if "triggers" in path else "GET"
    response = browser_app.options(path, headers=preflight(ADMIN_WEB, method, "authorization,content-type"))
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ADMIN_WEB
    assert method in response.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "access-control-allow-credentials" not in response.headers  # bearer tokens, no cookies


@pytest.mark.parametrize("path", PATHS)
def test_preflight_from_another_origin_is_refused(browser_app: TestClient, path: str) -> None:
    response = browser_app.options(path, headers=preflight("https://evil.example"))
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_the_actual_calls_carry_the_origin_for_an_allowed_one_only(browser_app: TestClient, db_url, admin) -> None:
    put_cache(db_url, site=SITE, app="app3_clue", target="7", result={})
    for path in (f"/api/admin/ai/dashboard?site_id={SITE}", "/api/ai/cache/app3_clue/7"):  # a route; the fast path
        ok = browser_app.get(path, headers={**admin, "Origin": ADMIN_WEB})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == ADMIN_WEB
        assert "origin" in ok.headers["vary"].lower()
        refused = browser_app.get(path, headers={**admin, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in refused.headers
        assert "access-control-allow-origin" not in browser_app.get(path, headers=admin).headers  # no browser
    # An error answer is readable by the admin web too (it shows the message).
    unauthorized = browser_app.get(PATHS[0], headers={"Origin": ADMIN_WEB})
    assert unauthorized.status_code == 401 and unauthorized.headers["access-control-allow-origin"] == ADMIN_WEB


def test_empty_allowlist_sends_no_cors_header(client: TestClient, admin) -> None:
    response = client.options(PATHS[0], headers=preflight(ADMIN_WEB))
    assert response.status_code == 405
    assert not [h for h in response.headers if h.startswith("access-control-")]
    response = client.get(PATHS[0], headers={**admin, "Origin": ADMIN_WEB})
    assert response.status_code == 200
    assert not [h for h in response.headers if h.startswith("access-control-")]
