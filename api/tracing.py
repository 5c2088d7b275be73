"""The API's traces: OpenTelemetry's FastAPI instrumentation, when tracing is on in this process.

Whether it is on is known when the app starts (``core/telemetry.py``, from the settings the
lifespan reads; nothing is read at import), by which time Starlette has already built the
middleware stack that runs the lifespan itself. So :func:`start` instruments the app then and
drops the built stack: the next request builds it again, with OpenTelemetry's middleware
outermost (``FastAPIInstrumentor`` wraps ``build_middleware_stack``). Every request is then a
server span named by its route template (``GET /api/ai/cache/{app_type}/{target_id}``), and the
LLM calls a request makes (the chat) are its children; the hot LLM-free paths (the latest-answer
read, health, the scrape) are left out by default (``ZQYY_UNTRACED_PATHS``, :class:`UntracedPaths`).
Off (the default), nothing is imported and nothing is added: a request pays nothing for tracing.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from zqyy_assets.core import telemetry
from zqyy_assets.core.settings import TelemetrySettings

SERVICE_NAME = "zqyy-api"


class UntracedPaths:
    """Outermost: a request whose path matches goes to the untraced middleware stack, so it never
    enters the tracing middleware (whose own exclusion list rebuilds the full URL of every request:
    measured at ~15 % of a cached read's cost)."""

    def __init__(self, traced: ASGIApp, untraced: ASGIApp, paths: re.Pattern[str]) -> None:
        self.traced, self.untraced, self.paths = traced, untraced, paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.paths.search(scope["path"]):
            await self.untraced(scope, receive, send)
        else:
            await self.traced(scope, receive, send)


def start(app: FastAPI, settings: TelemetrySettings) -> bool:
    """Turn tracing on for this process when the settings ask (or a test installed a provider)
    and trace the app's requests; True when they are traced."""
    telemetry.configure(settings, service_name=SERVICE_NAME)
    provider = telemetry.provider()
    if provider is None or getattr(app, "_is_instrumented_by_opentelemetry", False):
        return provider is not None
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    untraced = app.build_middleware_stack()
    # No spans for each ASGI receive and send (a streamed chat reply would be one per chunk).
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, exclude_spans=["receive", "send"])
    traced = app.build_middleware_stack()  # the same stack, with the tracing middleware outermost
    paths = [p.strip() for p in settings.zqyy_untraced_paths.split(",") if p.strip()]
    # Replaces the stack built before this lifespan ran; Starlette keeps a stack once set.
    app.middleware_stack = UntracedPaths(traced, untraced, re.compile("|".join(paths))) if paths else traced
    return True
