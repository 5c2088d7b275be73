"""Prometheus metrics of the API: its own per-process series, and the scrape that adds Postgres's.

Per process: ``zqyy_http_request_duration_seconds`` (a histogram by method, route template and
status: its ``_count`` is the request count) and ``zqyy_ws_subscribers`` (WebSocket subscribers
by channel and site). The route is the template (``/api/ai/cache/{app_type}/{target_id}``), never the raw
path, and ``<unmatched>`` for a path no route has, so the series stay few. The latest-answer fast
path (``api.fast_read``) answers outside FastAPI's routing and names its template itself.

Several workers: with ``PROMETHEUS_MULTIPROC_DIR`` in the environment prometheus_client (at its
import) keeps each process's values in a file of that directory, and a scrape of any worker
reads them all (``MultiProcessCollector``): counters and histograms add up, the subscriber
gauge is ``livesum`` (a worker's gauge file goes when it stops cleanly, ``mark_process_dead``).
Without it every worker would answer with its own figures only: set it whenever there are
several. The LLM, budget, breaker and inbox figures are Postgres's (``metrics_figures``), read
by every scrape whatever the mode.

The scrape port (``METRICS_PORT``) is prometheus_client's own HTTP server in a thread of the
worker that binds it first; the others find the port taken and leave it (each would serve the
same figures). A worker restarted after a crash binds it again if it was the one serving.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest, start_http_server
from prometheus_client import values as prometheus_values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.services.metrics_figures import PostgresFigures
from api.settings import Settings

log = logging.getLogger(__name__)

ROUTE_KEY = "zqyy.route"  # the scope key a route answered outside FastAPI's routing sets (the fast path)
UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # any other: "OTHER"

_PROCESS = CollectorRegistry()
HTTP_DURATION = Histogram(
    "zqyy_http_request_duration_seconds",
    "HTTP requests by method, route template and status, and how long they took (to the last byte).",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=_PROCESS,
)
WS_SUBSCRIBERS = Gauge(
    "zqyy_ws_subscribers",
    "WebSocket subscribers of the realtime channels, by channel (alerts, events) and site.",
    ["channel", "site"],
    multiprocess_mode="livesum",
    registry=_PROCESS,
)


def multiprocess_mode() -> bool:
    """Whether prometheus_client writes to ``PROMETHEUS_MULTIPROC_DIR`` (decided when it was imported)."""
    return bool(getattr(prometheus_values.ValueClass, "_multiprocess", False))


def check_mode(settings: Settings) -> None:
    """Refuse to start half in multiprocess mode: the directory must exist and be in the process's
    own environment before prometheus_client is imported (a ``.env`` line comes too late)."""
    path = settings.prometheus_multiproc_dir
    if path is None:
        return
    if not os.path.isdir(path):
        raise RuntimeError(f"PROMETHEUS_MULTIPROC_DIR={path!r} is not a directory: create it (empty) first")
    if not multiprocess_mode():
        raise RuntimeError(
            "PROMETHEUS_MULTIPROC_DIR must be set in the API process's environment (not only in .env):"
            " prometheus_client reads it when it is imported"
        )


class Metrics:
    """One app's scrape: the process series (or every worker's, in multiprocess mode) and Postgres's."""

    def __init__(self, settings: Settings) -> None:
        self.registry = CollectorRegistry()
        if settings.prometheus_multiproc_dir is not None:
            MultiProcessCollector(self.registry, path=settings.prometheus_multiproc_dir)
        else:
            self.registry.register(_PROCESS)
        self.registry.register(PostgresFigures(settings.database_url, settings.llm))
        self._server: Any = None

    def scrape(self) -> bytes:
        """The text format (blocking: the database is read; run it in a thread from async code)."""
        return generate_latest(self.registry)

    def serve_port(self, host: str, port: int) -> bool:
        """Serve the scrape without a token on ``host:port``; False when another worker has it."""
        try:
            self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            log.info("metrics port %s is served by another worker", port)
            return False
        log.info("metrics served on %s:%s (no token)", host, port)
        return True

    def close(self, settings: Settings) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if settings.prometheus_multiproc_dir is not None:
            mark_process_dead(os.getpid(), settings.prometheus_multiproc_dir)


class HttpMetrics:
    """Outermost middleware: each HTTP request's duration by method, route template and status.

    Cheap on purpose (the fast path's reads go through it): two clock reads, a wrapped ``send``
    and one histogram observation, through a per-(method, route, status) cache of the labelled
    series. Off (``METRICS_ENABLED=false``) it only passes the request on; the switch is read
    from the app's settings at the first request, which come with the app's start."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._enabled: bool | None = None
        self._series: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._enabled is None:
            settings = scope["app"].state.settings  # None only for an app used without its lifespan
            self._enabled = settings is None or settings.metrics_enabled
        if not self._enabled:
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before it answers

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = route.path if route is not None else scope.get(ROUTE_KEY, UNMATCHED)
            method = scope["method"]
            key = (method if method in _METHODS else "OTHER", template, status)  # made-up methods make no series
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = HTTP_DURATION.labels(key[0], template, str(status))
            series.observe(time.perf_counter() - started)
