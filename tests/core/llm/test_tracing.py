"""Each LLM call is an `invoke_agent {app}` span with the GenAI attributes (the SDK's in-memory exporter)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from tests.core.llm.conftest import ledger
from zqyy_assets.core import telemetry
from zqyy_assets.core.llm.errors import BudgetExceeded, PermanentLLMError, StreamInterrupted

PROMPT = {"member": {"member_id": 42, "name": "张三"}}


def _one(spans):
    [span] = spans.get_finished_spans()
    return span


def test_a_call_is_an_invoke_agent_span_with_the_genai_attributes(make_service, fake, db_url, spans) -> None:
    fake.script("app3_clue", tokens=(1200, 340), model="qwen-plus")
    run_id = str(uuid.uuid4())
    answer = make_service().call_app(
        "app3_clue",
        PROMPT,
        site_id=7,
        target_id="42",
        dagster_run_id=run_id,
        trigger_type="consumption",
        input_hash="abc123",
    )

    span = _one(spans)
    [row] = ledger(db_url)
    assert span.name == "invoke_agent app3_clue" and span.kind == SpanKind.CLIENT
    assert span.status.status_code == StatusCode.UNSET
    attrs = dict(span.attributes)
    assert {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.provider.name": "dashscope",
        "gen_ai.agent.name": "app3_clue",
        "gen_ai.agent.id": "fake-app3_clue",
        "gen_ai.conversation.id": answer.session_id,
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 340,
        "gen_ai.response.model": "qwen-plus",
        "gen_ai.response.id": answer.request_id,
        "zqyy.site_id": 7,
        "zqyy.target_id": "42",
        "zqyy.partition_key": "7-42",
        "zqyy.input_hash": "abc123",
        "zqyy.memo_hit": False,
        "zqyy.cost_cny": answer.cost_cny,
        "zqyy.attempts": 1,
        "zqyy.ledger_id": row["id"],
        "zqyy.trigger_type": "consumption",
        "dagster.run_id": run_id,
    }.items() <= attrs.items()
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert "error.type" not in attrs
    # Content is opt-in: no prompt or answer text by default.
    assert "gen_ai.input.messages" not in attrs and "gen_ai.output.messages" not in attrs


def test_prompt_and_answer_text_only_when_opted_in(make_service, fake, db_url, spans) -> None:
    telemetry.use_provider(telemetry.provider(), capture_content=True)
    fake.script("app3_clue")
    answer = make_service().call_app("app3_clue", PROMPT, site_id=1, target_id="42")
    attrs = _one(spans).attributes
    [message] = json.loads(attrs["gen_ai.input.messages"])
    assert message["role"] == "user" and "张三" in message["parts"][0]["content"]
    [reply] = json.loads(attrs["gen_ai.output.messages"])
    assert reply["role"] == "assistant" and json.loads(reply["parts"][0]["content"]) == answer.payload


def test_retries_are_events_of_the_calls_span(make_service, fake, db_url, spans) -> None:
    fake.script("app3_clue", ["500", "429"])
    make_service().call_app("app3_clue", PROMPT, site_id=1)
    span = _one(spans)
    assert [(e.name, e.attributes["zqyy.attempt"], e.attributes["error.type"]) for e in span.events] == [
        ("zqyy.llm.retry", 1, "InternalError"),
        ("zqyy.llm.retry", 2, "Throttling.RateQuota"),
    ]
    assert span.attributes["zqyy.attempts"] == 3 and "error.type" not in span.attributes


def test_a_guard_refusal_is_an_event_and_the_error_type(make_service, fake, db_url, spans) -> None:
    with pytest.raises(BudgetExceeded):
        make_service(daily_token_limit=0).call_app("app3_clue", PROMPT, site_id=1)
    span = _one(spans)
    [row] = ledger(db_url)
    [event] = span.events
    assert event.name == "zqyy.llm.guard_refused"
    assert dict(event.attributes) == {"zqyy.guard.reason": "budget_exceeded", "zqyy.ledger_id": row["id"]}
    assert span.attributes["error.type"] == "budget_exceeded" and span.status.status_code == StatusCode.ERROR
    assert fake.count("app3_clue") == 0


def test_a_failed_call_names_its_error_and_what_it_spent(make_service, fake, db_url, spans) -> None:
    fake.script("app3_clue", ["401"])
    with pytest.raises(PermanentLLMError):
        make_service().call_app("app3_clue", PROMPT, site_id=1)
    span = _one(spans)
    assert span.attributes["error.type"] == "InvalidApiKey" and span.status.status_code == StatusCode.ERROR
    assert span.attributes["gen_ai.usage.input_tokens"] == 0 and span.attributes["zqyy.cost_cny"] == 0.0


def test_a_runs_calls_share_the_runs_trace(make_service, fake, db_url, spans) -> None:
    fake.script("*")
    run_id, other_run = str(uuid.uuid4()), str(uuid.uuid4())
    service = make_service()
    service.call_app("app3_clue", PROMPT, site_id=1, target_id="1", dagster_run_id=run_id)
    service.call_app("app6_note", PROMPT, site_id=1, target_id="1", dagster_run_id=run_id)
    service.call_app("app3_clue", PROMPT, site_id=1, target_id="2", dagster_run_id=other_run)
    service.call_app("app3_clue", PROMPT, site_id=1, target_id="3")
    first, second, other, alone = spans.get_finished_spans()
    # The trace id is the run id (a UUID): the run's trace is found by the id Dagster shows.
    assert first.context.trace_id == second.context.trace_id == uuid.UUID(run_id).int
    assert first.parent.span_id == second.parent.span_id and first.parent.is_remote
    assert other.context.trace_id == uuid.UUID(other_run).int
    assert alone.parent is None and alone.context.trace_id not in (first.context.trace_id, other.context.trace_id)


def test_a_call_inside_a_span_is_its_child(make_service, fake, db_url, spans) -> None:
    fake.script("app3_clue")
    with telemetry.tracer().start_as_current_span("request"):
        make_service().call_app("app3_clue", PROMPT, site_id=1, dagster_run_id=str(uuid.uuid4()))
    call, request = spans.get_finished_spans()
    assert call.parent.span_id == request.context.span_id and call.context.trace_id == request.context.trace_id


def test_the_chat_stream_is_one_span(make_service, fake, db_url, spans) -> None:
    fake.script("app1_chat", tokens=(500, 200), model="qwen-turbo", chunks=4)
    deltas = list(make_service().stream_chat("你好", site_id=3, session_id="s-1"))
    span = _one(spans)
    assert span.name == "invoke_agent app1_chat"
    attrs = span.attributes
    assert (attrs["gen_ai.usage.input_tokens"], attrs["gen_ai.usage.output_tokens"]) == (500, 200)
    assert attrs["zqyy.streamed"] is True and attrs["zqyy.ledger_id"] == deltas[-1].ledger_id
    assert attrs["gen_ai.conversation.id"] == deltas[-1].session_id and "error.type" not in attrs


def test_a_stream_the_reader_leaves_ends_its_span_cancelled(make_service, fake, db_url, spans) -> None:
    fake.script("app1_chat", chunks=6)
    stream = make_service().stream_chat("你好", site_id=3)
    next(stream)
    stream.close()
    span = _one(spans)
    assert span.attributes["error.type"] == "Cancelled"
    [row] = ledger(db_url)
    assert row["error_code"] == "Cancelled"


def test_a_stream_broken_midway_names_its_error(make_service, fake, db_url, spans) -> None:
    fake.script("app1_chat", ["stream_error:2:InternalError"], chunks=5)
    with pytest.raises(StreamInterrupted):
        list(make_service(max_attempts=1).stream_chat("你好", site_id=3))
    assert _one(spans).attributes["error.type"] == "InternalError"


def test_the_offline_provider_is_traced_as_offline(make_service, db_url, spans) -> None:
    make_service(provider="offline").call_app("app3_clue", PROMPT, site_id=1)
    attrs = _one(spans).attributes
    assert attrs["gen_ai.provider.name"] == "offline" and attrs["gen_ai.usage.input_tokens"] == 0


def test_tracing_off_makes_no_span_and_loads_no_sdk(make_service, fake, db_url) -> None:
    assert telemetry.tracer() is None
    fake.script("app3_clue")
    make_service().call_app("app3_clue", PROMPT, site_id=1)  # works, traced by nobody
    # FastAPI itself imports the OpenTelemetry API; the SDK, the exporter and the instrumentation
    # are imported only when tracing is turned on.
    heavy = ("opentelemetry.sdk", "opentelemetry.exporter", "opentelemetry.instrumentation")
    code = (
        "import sys, api.main, zqyy_assets.core.llm.service, zqyy_assets.core.answering;"
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
