"""The API while its database is away and after it comes back: 503 with ``Retry-After``, promptly,
on every path (routes, the latest-answer fast path, auth lookups); never a 500; recovered by itself.

The outage is this test's database refusing connections (``ALLOW_CONNECTIONS false``) with every
backend terminated: the pool's connections die as in a server restart, and new ones are refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.api.conftest import SITE, put_cache
from tests.api.realtime_support import wait_until
from tests.databases import allow_connections

READ = "/api/ai/cache/app7_customer/42"
PATHS = ("/api/health", READ, "/api/admin/ai/dashboard", f"/api/xcx/chat/history?site_id={SITE}")


@pytest.fixture
def outage(pg_server_url: str, db_url: str) -> Iterator[tuple[Callable[[], None], Callable[[], None]]]:
    def set_allowed(allowed: bool) -> None:
        allow_connections(pg_server_url, db_url, allowed)

    yield (lambda: set_allowed(False)), (lambda: set_allowed(True))
    set_allowed(True)


def test_503_while_away_and_recovered_after(api_settings: Settings, db_url, make_token, outage) -> None:
    stop, start = outage
    put_cache(db_url, site=SITE, app="app7_customer", target="42", result={"v": 1})
    headers = {"Authorization": f"Bearer {make_token('admin')}"}
    settings = api_settings.model_copy(update={"db_pool_timeout_s": 1.0})
    statuses: list[tuple[str, int]] = []
    with TestClient(create_app(settings)) as client:
        assert [client.get(path, headers=headers).status_code for path in PATHS] == [200] * len(PATHS)

        stop()
        for path in PATHS:
            began = time.monotonic()
            answer = client.get(path, headers=headers)
            statuses.append((path, answer.status_code))
            assert answer.status_code == 503, (path, answer.text)
            assert answer.headers["Retry-After"] == "5"
            assert time.monotonic() - began < 10  # bounded by DB_POOL_TIMEOUT_S, not the pool's 30 s

        start()

        def every_path_answers() -> bool:
            codes = [(path, client.get(path, headers=headers).status_code) for path in PATHS]
            statuses.extend(codes)
            return all(code == 200 for _, code in codes)

        wait_until(every_path_answers, 30, "the API to recover by itself")
    assert [s for s in statuses if s[1] not in (200, 503)] == []  # never a 500, before or after
