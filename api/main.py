"""Builds the FastAPI app. The API never imports Dagster.

It talks to Dagster over GraphQL/HTTP only (``api.services.pipeline_runs``); the batch estimate
reuses the AI assets' prompt builders and memoization test from ``zqyy_assets.core``, and the
chat the LLM layer's service class (``zqyy_assets.core.llm.service``), so the guards, the budget
and the ledger are the same as in the pipeline. ``tests/api/test_imports.py`` keeps it so.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import psycopg
from fastapi import APIRouter, FastAPI, Request, status
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.routing import Match

from api import auth, collector, tracing
from api.auth_throttle import AuthThrottle
from api.cors import SettingsCORS
from api.database_away import DATABASE_AWAY, database_unavailable
from api.fast_read import LatestAnswerFastPath
from api.login_tokens import LoginTokens
from api.metrics import HttpMetrics, Metrics, check_mode
from api.routes import (
    admin_alerts,
    admin_batch,
    admin_cache,
    admin_dashboard,
    admin_jobs,
    admin_run_logs,
    admin_runs,
    admin_triggers,
    cache,
    chat,
    events,
    health,
    metrics,
    realtime,
)
from api.services import Pool, cache_reads
from api.services.pipeline_runs import DagsterRuns
from api.services.realtime_hub import RealtimeHub
from api.settings import Settings, get_settings
from zqyy_assets.core.llm.service import LLMService

log = logging.getLogger(__name__)

DESCRIPTION = """
Cached AI answers, business-event intake, the AI back office (`/api/admin/ai/*`) and the
mini-program chat (`/api/xcx/chat/*`), and the realtime WebSocket channels
(`/ws/ai-alerts/{site_id}`, `/ws/ai-events/{site_id}`; see the README's "Realtime").

Every endpoint but `/api/health` needs `Authorization: Bearer <token>`: the platform's login
token (a JWT from its auth service; a user not approved gets 403), or one issued with
`zqyy token issue`. A token has a role (`admin` or `staff`) and a set of sites; a request
works on exactly one of them (`site_id`, which a single-site token may omit).
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings or get_settings()
    app.state.settings = settings
    tracing.start(app, settings.telemetry)  # OpenTelemetry: requests and LLM calls as spans, when on (api/tracing.py)
    pool: Pool = AsyncConnectionPool(
        settings.database_url,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        kwargs={"autocommit": True, "row_factory": dict_row},
        timeout=settings.db_pool_timeout_s,
        open=False,
    )
    await pool.open()
    app.state.pool = pool
    app.state.latest_answers = cache_reads.LatestAnswers(pool)
    app.state.principals = auth.PrincipalCache(settings.auth_cache_ttl_s)
    app.state.auth_throttle = AuthThrottle(settings.auth_failures_per_minute, settings.auth_throttle_refresh_s)
    app.state.auth_throttle.start(pool)
    app.state.login_tokens = LoginTokens(settings.login)
    app.state.dagster = DagsterRuns(settings)
    app.state.llm = LLMService(settings.llm)
    # One LISTEN connection per worker, fanned out to this worker's WebSocket subscribers.
    app.state.realtime = RealtimeHub(settings.database_url, pool, settings.realtime)
    await app.state.realtime.start()
    app.state.metrics = _start_metrics(settings)
    app.state.background = set()  # tasks that must outlive a request (saving a closed stream's reply)
    with collector.long_lived_heap():  # the startup heap frozen, full collections spaced out (api/collector.py)
        try:
            yield
        finally:
            if app.state.background:
                await asyncio.wait(app.state.background, timeout=5)
            await app.state.realtime.stop()
            await app.state.auth_throttle.stop()
            if app.state.metrics is not None:
                app.state.metrics.close(settings)
            await asyncio.to_thread(app.state.llm.close)
            await app.state.dagster.aclose()
            await pool.close()


def _start_metrics(settings: Settings) -> Metrics | None:
    """The scrape of ``/metrics`` (and of ``METRICS_PORT`` when set), or None when metrics are off."""
    if not settings.metrics_enabled:
        return None
    check_mode(settings)
    scrape = Metrics(settings)
    if settings.metrics_port is not None:
        scrape.serve_port(settings.metrics_host, settings.metrics_port)
    return scrape


async def _data_error(request: Request, exc: Exception) -> JSONResponse:
    """A value Postgres refused (NUL byte, out of range...): the client's input, so a 422, in the
    validation-error shape the document declares for every 422 (which field is not known here)."""
    first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    error = {"type": "value_error", "loc": [], "msg": f"invalid value: {first_line}"}
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": [error]})


def _method_not_allowed(routers: list[APIRouter]) -> Callable[[Request, Exception], Awaitable[Response]]:
    """405 naming in ``Allow`` every method the path has: Starlette names only the first route that
    matched the path (a path's GET and POST are two routes)."""

    async def answer(request: Request, exc: Exception) -> Response:
        methods: set[str] = set()
        for router in routers:
            for route in router.routes:
                match, _ = route.matches(request.scope)
                if match != Match.NONE and isinstance(route, APIRoute) and route.methods:
                    methods |= route.methods
        headers = {"Allow": ", ".join(sorted(methods))} if methods else None
        return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers=headers)

    return answer


def create_app(settings: Settings | None = None, *, fast_read: bool = True) -> FastAPI:
    """``settings`` is for tests; the served app reads the environment when it starts.

    ``fast_read=False`` leaves the latest-answer read to its FastAPI route alone (tests compare the two)."""
    app = FastAPI(
        title="zqyy AI assets API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry hooks (active whenever opentelemetry is installed) off: requests
        # are traced by the instrumentation of api/tracing.py when tracing is on, and measured by
        # api/metrics.py; left on, every request would also look up the global providers.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings  # None: read from the environment when the app starts
    app.add_exception_handler(psycopg.DataError, _data_error)
    app.add_exception_handler(psycopg.OperationalError, database_unavailable)
    if fast_read:
        app.add_middleware(LatestAnswerFastPath)
    app.add_middleware(SettingsCORS)  # outside the fast path, so its answers get CORS too
    app.add_middleware(HttpMetrics)  # added last: outermost, so every request is timed, fast path included
    modules = (
        health,
        cache,
        events,
        admin_dashboard,
        admin_cache,
        admin_alerts,
        admin_jobs,
        admin_runs,
        admin_run_logs,
        admin_triggers,
        admin_batch,
        chat,
        realtime,
        metrics,
    )
    for module in modules:
        app.include_router(module.router, responses=DATABASE_AWAY)
    app.add_exception_handler(405, _method_not_allowed([module.router for module in modules]))
    return app


app = create_app()
