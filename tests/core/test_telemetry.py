"""Tracing is off by default and exports over OTLP/HTTP when an endpoint is set (a real exporter, a local sink)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from zqyy_assets.core import telemetry
from zqyy_assets.core.settings import TelemetrySettings


@pytest.fixture
def sink() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    """An OTLP/HTTP endpoint in a thread: the export requests it received, parsed."""
    received: list[ExportTraceServiceRequest] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            request = ExportTraceServiceRequest()
            request.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
            received.append(request)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_off_unless_an_endpoint_is_set() -> None:
    assert not TelemetrySettings(_env_file=None).enabled
    assert TelemetrySettings(otel_exporter_otlp_endpoint="http://collector:4318").enabled
    assert TelemetrySettings(otel_exporter_otlp_traces_endpoint="http://collector:4318/v1/traces").enabled
    assert not TelemetrySettings(otel_exporter_otlp_endpoint="http://c:4318", otel_sdk_disabled=True).enabled
    assert not TelemetrySettings(otel_exporter_otlp_endpoint="  ").enabled  # blank is unset
    assert telemetry.configure(TelemetrySettings(otel_exporter_otlp_endpoint=None), service_name="t") is False
    assert telemetry.tracer() is None


def test_spans_are_exported_over_otlp_http_when_the_endpoint_is_set(sink) -> None:
    url, received = sink
    run_id = str(uuid.uuid4())
    # Its own process: turning tracing on sets OpenTelemetry's global provider, once per process.
    code = (
        "from zqyy_assets.core import telemetry\n"
        "from zqyy_assets.core.llm.tracing import memo_hit_span\n"
        "from zqyy_assets.core.settings import TelemetrySettings\n"
        "assert telemetry.configure(TelemetrySettings(), service_name='zqyy-test')\n"
        "memo_hit_span(app_name='app3_clue', provider='dashscope', site_id=7, target_id='42', input_hash='h',\n"
        f"              dagster_run_id={run_id!r}, trigger_type='consumption', tokens_avoided=10)\n"
        "telemetry.shutdown()\n"
    )
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": "zqyy-dagster-test"}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)

    [request] = received
    [resource_spans] = request.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}["service.name"]
    [span] = [s for scope in resource_spans.scope_spans for s in scope.spans]
    attrs = {a.key: a.value for a in span.attributes}
    assert service == "zqyy-dagster-test" and span.name == "invoke_agent app3_clue"
    assert attrs["zqyy.memo_hit"].bool_value and attrs["zqyy.partition_key"].string_value == "7-42"
    assert span.trace_id == uuid.UUID(run_id).bytes  # the run's trace


def test_a_run_id_that_is_not_a_uuid_still_names_one_trace() -> None:
    assert telemetry.run_trace_id("run-a") == telemetry.run_trace_id("run-a") != telemetry.run_trace_id("run-b")
    assert 0 < telemetry.run_trace_id("run-a") < 2**128
