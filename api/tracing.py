"""The API's traces: OpenTelemetry's FastAPI instrumentation, when tracing is on in this process.

Whether it is on is known when the app starts (``core/telemetry.py``, from the settings the
lifespan reads; nothing is read at import), by which time Starlette has already built the
middleware stack that runs the lifespan itself. So :func:`start` instruments the app then and
drops the built stack: the next request builds it again, with OpenTelemetry's middleware
outermost (``FastAPIInstrumentor`` wraps ``build_middleware_stack``). Every request is then a
server span named by its route template (``GET /api/ai/cache/{app_type}/{target_id}``), and the
LLM calls a request makes (the chat) are its children; the hot LLM-free paths (the latest-answer
read, health, the scrape) are left out by default (``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS``).
Off (the default), nothing is imported and nothing is added: a request pays nothing for tracing.
"""

from __future__ import annotations

from fastapi import FastAPI

from zqyy_assets.core import telemetry
from zqyy_assets.core.settings import TelemetrySettings

SERVICE_NAME = "zqyy-api"


def start(app: FastAPI, settings: TelemetrySettings) -> bool:
    """Turn tracing on for this process when the settings ask (or a test installed a provider)
    and trace the app's requests; True when they are traced."""
    telemetry.configure(settings, service_name=SERVICE_NAME)
    provider = telemetry.provider()
    if provider is None or getattr(app, "_is_instrumented_by_opentelemetry", False):
        return provider is not None
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # No spans for each ASGI receive and send (a streamed chat reply would be one per chunk).
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=settings.otel_python_fastapi_excluded_urls,
        exclude_spans=["receive", "send"],
    )
    app.middleware_stack = None  # built again by the next request, with the tracing middleware
    return True
