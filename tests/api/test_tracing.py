"""API requests traced with OpenTelemetry's FastAPI instrumentation; a chat's LLM call is the request's child."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind

from api.main import create_app
from api.settings import Settings
from tests.api.conftest import bearer
from zqyy_assets.core.llm.settings import LLMSettings
from zqyy_assets.core.settings import DatabaseSettings, TelemetrySettings
from zqyy_assets.testing.fake_dashscope import FAKE_API_KEY, FakeDashScope


@pytest.fixture
def fake() -> Iterator[FakeDashScope]:
    with FakeDashScope() as server:
        yield server


@pytest.fixture
def traced_settings(db_url: str, fake: FakeDashScope) -> Settings:
    return Settings(
        database=DatabaseSettings(database_url=db_url),
        db_pool_min_size=1,
        db_pool_max_size=4,
        dagster_graphql_url="http://127.0.0.1:9/graphql",
        llm=LLMSettings(api_key=FAKE_API_KEY, base_url=fake.base_url, app_ids={"app1_chat": "fake-app1_chat"}),
        telemetry=TelemetrySettings(otel_exporter_otlp_endpoint=None),
    )


def test_requests_are_server_spans_named_by_their_route(traced_settings, spans, make_token) -> None:
    token = bearer(make_token("admin"))
    with TestClient(create_app(traced_settings)) as client:
        assert client.get("/api/health").status_code == 200  # a hot LLM-free path: not traced by default
        assert client.get("/api/ai/cache/app3_clue/1", headers=token).status_code == 404  # the latest answer: nor
        assert client.get("/api/ai/cache/app3_clue/1/history", headers=token).status_code == 404
        assert client.get("/api/admin/ai/run-logs/999999", headers=token).status_code == 404
    server = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert [(s.name, s.attributes["http.route"]) for s in server] == [
        ("GET /api/ai/cache/{app_type}/{target_id}/history", "/api/ai/cache/{app_type}/{target_id}/history"),
        ("GET /api/admin/ai/run-logs/{log_id}", "/api/admin/ai/run-logs/{log_id}"),
    ]
    assert server[1].attributes["http.status_code"] == 404  # the instrumentation's default HTTP conventions


def test_an_empty_exclusion_list_traces_every_request(traced_settings, spans) -> None:
    telemetry = traced_settings.telemetry.model_copy(update={"zqyy_untraced_paths": ""})
    with TestClient(create_app(traced_settings.model_copy(update={"telemetry": telemetry}))) as client:
        assert client.get("/api/health").status_code == 200
    assert [s.name for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER] == ["GET /api/health"]


def test_a_chats_llm_call_is_a_child_of_its_request(traced_settings, spans, fake, make_token) -> None:
    me = bearer(make_token("staff", subject="assistant-1024"))
    with TestClient(create_app(traced_settings)) as client:
        chat_id = client.get("/api/xcx/chat/messages?contextType=member&contextId=7", headers=me).json()["chatId"]
        body = {"chatId": chat_id, "content": "今天营收如何？"}
        response = client.post("/api/xcx/chat/stream", json=body, headers=me)
        assert response.status_code == 200
    finished = spans.get_finished_spans()
    [call] = [s for s in finished if s.name == "invoke_agent app1_chat"]
    [request] = [s for s in finished if s.kind == SpanKind.SERVER and s.name == "POST /api/xcx/chat/stream"]
    assert call.context.trace_id == request.context.trace_id
    parents = {s.context.span_id: s for s in finished}
    parent = parents[call.parent.span_id]
    while parent.kind != SpanKind.SERVER:  # the ASGI send/receive spans sit in between
        parent = parents[parent.parent.span_id]
    assert parent is request and call.attributes["gen_ai.provider.name"] == "dashscope"


def test_off_by_default_nothing_is_instrumented(traced_settings) -> None:
    app = create_app(traced_settings)
    with TestClient(app) as client:
        assert client.get("/api/health").status_code == 200
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
