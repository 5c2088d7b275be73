"""OpenTelemetry traces: off by default, exported over OTLP/HTTP when an endpoint is set.

A process turns tracing on once, where it starts (the API's lifespan, the Dagster LLM
resource when it builds its service), with :func:`configure` and the
:class:`~zqyy_assets.core.settings.TelemetrySettings` it read: with
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) set, spans go through a batching
processor to the OTLP/HTTP exporter, which reads the standard ``OTEL_EXPORTER_OTLP_*``
variables itself (headers, timeout, compression). ``OTEL_SDK_DISABLED=true`` keeps it off.

Off, nothing here imports OpenTelemetry and no span object is made: :func:`tracer` answers
None and the callers (``core/llm/tracing.py``) skip their spans. Tests and the benchmarks
install their own provider (an in-memory exporter) with :func:`use_provider` and take it away
with :func:`reset`; the provider is this module's, not only OpenTelemetry's global one (which
can be set once per process), so a benchmark can compare traced and untraced runs in one
process.

A Dagster run's calls share one trace: its id is the run id's 128 bits (a Dagster run id is a
UUID), so the trace of run ``3f2a...`` is trace ``3f2a...`` (dashes removed) in the tracing
UI, across every step and process of the run (:func:`run_context`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Tracer

    from zqyy_assets.core.settings import TelemetrySettings

logger = logging.getLogger(__name__)

INSTRUMENTATION_NAME = "zqyy_assets"


@dataclass
class _State:
    provider: TracerProvider | None = None
    tracer: Tracer | None = None
    capture_content: bool = False
    owned: bool = False  # configured from settings: shut down (flushed) by shutdown()


_state = _State()
_lock = threading.Lock()


def configure(settings: TelemetrySettings, *, service_name: str) -> bool:
    """Turn tracing on in this process when the settings ask for it; True when it is on.

    Idempotent: the first provider installed stays (a second call, or one after
    :func:`use_provider`, changes nothing)."""
    with _lock:
        if _state.provider is not None:
            return True
        if not settings.enabled:
            return False
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name or service_name}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        _install(provider)
        _state.owned = True
        _state.capture_content = settings.capture_content
        try:
            trace.set_tracer_provider(provider)  # for libraries that ask OpenTelemetry's global one
        except Exception:  # already set by someone else: ours is still used for our spans
            logger.debug("the global tracer provider was already set", exc_info=True)
    logger.info("tracing on: spans exported over OTLP/HTTP as %s", settings.service_name or service_name)
    return True


def _install(provider: TracerProvider) -> None:
    _state.provider = provider
    _state.tracer = provider.get_tracer(INSTRUMENTATION_NAME)


def use_provider(provider: TracerProvider, *, capture_content: bool = False) -> None:
    """Trace into ``provider`` (tests, benchmarks); :func:`reset` turns it off again."""
    with _lock:
        _install(provider)
        _state.capture_content = capture_content
        _state.owned = False


def reset() -> None:
    """Tracing off in this process (the provider is not shut down: its owner does that)."""
    with _lock:
        _state.provider = _state.tracer = None
        _state.capture_content = _state.owned = False


def shutdown() -> None:
    """Flush and stop a provider :func:`configure` made (a process about to end)."""
    with _lock:
        provider, owned = _state.provider, _state.owned
    if provider is not None and owned:
        provider.force_flush()


def tracer() -> Tracer | None:
    """The project's tracer, or None when tracing is off."""
    return _state.tracer


def provider() -> TracerProvider | None:
    return _state.provider


def capture_content() -> bool:
    """Prompt and answer text may go on spans (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``)."""
    return _state.capture_content


def run_trace_id(run_id: str) -> int:
    """A run's trace id: the run id's UUID bits, else 128 bits of its sha256."""
    try:
        return uuid.UUID(run_id).int or 1
    except ValueError:
        return int.from_bytes(hashlib.sha256(run_id.encode()).digest()[:16], "big") or 1


def run_context(run_id: str) -> Context:
    """A context whose (remote) parent is the run: every span started in it joins the run's trace."""
    from opentelemetry import trace

    span_id = int.from_bytes(hashlib.sha256(f"run:{run_id}".encode()).digest()[:8], "big") or 1
    parent = trace.SpanContext(
        trace_id=run_trace_id(run_id),
        span_id=span_id,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


def parent_context(dagster_run_id: str | None) -> Context | None:
    """Where a new span hangs: under the current span when there is one (an API request), else
    under its run (``dagster_run_id``), else a new trace (None)."""
    from opentelemetry import trace

    if trace.get_current_span().get_span_context().is_valid:
        return None  # the current context
    return run_context(dagster_run_id) if dagster_run_id else None
