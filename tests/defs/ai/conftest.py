"""Fixtures for the AI assets: the AI venue with DWS computed, the real SDK against the fake
DashScope server on loopback, and a proxy in front of the fake that fails chosen sites' calls."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dagster as dg
import pytest
import requests

from tests.defs.ai.venue import load_ai_venue, shared_ai_venue
from zqyy_assets.core import db
from zqyy_assets.core.apps import APP_NAMES
from zqyy_assets.defs.ai.assets import ai_assets
from zqyy_assets.defs.ai.resources import LLMResource
from zqyy_assets.defs.ods.assets import ods_assets
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource
from zqyy_assets.testing.fake_dashscope import FAKE_API_KEY, FakeDashScope

# Quick retries and guards wide open: these tests are about the assets, not the guards.
FAST_LLM: dict[str, Any] = {
    "provider": "dashscope",
    "api_key": FAKE_API_KEY,
    "app_ids": {name: f"fake-{name}" for name in APP_NAMES},
    "max_attempts": 2,
    "retry_base_delay_seconds": 0.01,
    "retry_max_delay_seconds": 0.02,
    "request_timeout_seconds": 10.0,
    "rate_per_minute": 600_000.0,
    "rate_burst": 10_000,
    "breaker_failure_threshold": 10_000,
    "daily_token_limit": 1_000_000_000,
    "monthly_token_limit": 1_000_000_000,
}


@pytest.fixture
def venue(db_url: str) -> str:
    with db.transaction(db_url) as conn:
        load_ai_venue(conn)
    return db_url


@pytest.fixture(scope="module")
def shared_venue(pg_server_url: str, template_db: str) -> Iterator[str]:
    """One AI venue for a module's read-only tests (tests that write roll back their transaction)."""
    with shared_ai_venue(pg_server_url, template_db) as url:
        yield url


@pytest.fixture
def fake() -> Iterator[FakeDashScope]:
    with FakeDashScope() as server:
        yield server


@pytest.fixture
def make_llm(db_url: str, fake: FakeDashScope) -> Callable[..., LLMResource]:
    def make(**overrides: Any) -> LLMResource:
        return LLMResource(**{**FAST_LLM, "database_url": db_url, "base_url": fake.base_url, **overrides})

    return make


@pytest.fixture
def resources(db_url: str, make_llm: Callable[..., LLMResource]) -> dict[str, Any]:
    return {
        "llm": make_llm(),
        "postgres": PostgresResource(database_url=db_url),
        "venue_calendar": VenueCalendarResource(),
    }


def materialize(
    selection: list[dg.AssetsDefinition],
    resources: dict[str, Any],
    *,
    instance: dg.DagsterInstance | None = None,
    partition_key: str | None = None,
    tags: dict[str, str] | None = None,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ods_assets, *ai_assets],
        selection=selection,
        resources=resources,
        instance=instance or dg.DagsterInstance.ephemeral(),
        partition_key=partition_key,
        tags=tags,
        run_config=run_config,
        raise_on_error=False,
    )


def cache_rows(db_url: str, cache_type: str | None = None, site_id: int | None = None) -> list[dict]:
    with db.connect(db_url) as conn:
        return conn.execute(
            """SELECT * FROM biz.ai_cache
               WHERE (%(t)s::text IS NULL OR cache_type = %(t)s) AND (%(s)s::bigint IS NULL OR site_id = %(s)s)
               ORDER BY id""",
            {"t": cache_type, "s": site_id},
        ).fetchall()


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in event.materialization.metadata.items()}


# ------------------------------------------------------------------------- failing proxy


class SiteFailingProxy:
    """Forwards completions to the fake, except those whose prompt matches ``fails``: those get
    ``error`` (default a 500, a transient error, retried by the LLM layer, then given up).
    Scripting by prompt content, which the fake's per-app queues cannot do under concurrency."""

    def __init__(
        self, upstream: str, fails: Callable[[dict], bool], error: tuple[int, str] = (500, "InternalError")
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.fails = fails
        self.error = error
        self.failed = 0
        self._lock = threading.Lock()
        self._session = requests.Session()  # keep-alive to the fake
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                prompt = json.loads(body).get("input", {}).get("prompt", "")
                try:
                    parsed = json.loads(prompt)
                except ValueError:
                    parsed = {}
                if proxy.fails(parsed):
                    with proxy._lock:
                        proxy.failed += 1
                    status, code = proxy.error
                    self._send(status, json.dumps({"code": code, "message": "scripted", "request_id": "x"}).encode())
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                response = proxy._session.post(f"{proxy.upstream}{self.path}", data=body, headers=headers, timeout=30)
                self._send(response.status_code, response.content)

            def _send(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/api/v1"

    def __enter__(self) -> SiteFailingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._session.close()


def prompt_site(prompt: dict) -> int | None:
    site = prompt.get("site")
    return site.get("site_id") if isinstance(site, dict) else prompt.get("site_id")
