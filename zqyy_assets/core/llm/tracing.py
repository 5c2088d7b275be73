"""The span of one LLM call, per the OpenTelemetry GenAI conventions (agent spans).

Each call (``service.call_app``, ``stream.stream_chat``) is one ``invoke_agent {app}`` span of
kind CLIENT: ``gen_ai.operation.name=invoke_agent``, ``gen_ai.provider.name`` (``dashscope`` /
``offline``), ``gen_ai.agent.name`` (the app), ``gen_ai.agent.id`` (its Bailian app id),
``gen_ai.conversation.id`` (the session), ``gen_ai.usage.input_tokens`` / ``output_tokens``
(every attempt's), ``gen_ai.response.model`` / ``id`` / ``finish_reasons`` and ``error.type``
when it did not succeed; the project's own under ``zqyy.*``: site, target, partition key, input
hash, whether memoization answered (``zqyy.memo_hit``), attempts, cost in CNY, ledger row,
trigger and Dagster run. A failed attempt that is retried is an event ``zqyy.llm.retry``; a
guard's refusal an event ``zqyy.llm.guard_refused`` with its reason (and ``error.type``).
A memo hit makes no call: :func:`memo_hit_span` records it as a span of its own, so a run's
trace shows every answer it needed, asked or not.

Prompt and answer text (``gen_ai.input.messages`` / ``gen_ai.output.messages``, JSON) only
when content capture is opted in (``core/telemetry.py``). With tracing off every method here
does nothing and nothing is allocated but this object.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from zqyy_assets.core import telemetry
from zqyy_assets.core.llm.errors import AttemptError, GuardRefused, LLMError
from zqyy_assets.core.partition_keys import partition_key_of

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from zqyy_assets.core.llm.ledger import CallRecord
    from zqyy_assets.core.llm.service import AppAnswer

OPERATION = "invoke_agent"


def span_name(app_name: str) -> str:
    return f"{OPERATION} {app_name}"


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None and value != ""}


def _messages(role: str, text: str, finish_reason: str | None = None) -> str:
    message: dict[str, Any] = {"role": role, "parts": [{"type": "text", "content": text}]}
    if finish_reason:
        message["finish_reason"] = finish_reason
    return json.dumps([message], ensure_ascii=False)


def _start(name: str, attributes: dict[str, Any], dagster_run_id: str | None) -> Span | None:
    tracer = telemetry.tracer()
    if tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    context = telemetry.parent_context(dagster_run_id)
    return tracer.start_span(name, context=context, kind=SpanKind.CLIENT, attributes=_clean(attributes))


def _call_attributes(record: CallRecord, input_hash: str | None) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.provider.name": record.provider,
        "gen_ai.agent.name": record.app_name,
        "gen_ai.agent.id": record.app_id,
        "gen_ai.conversation.id": record.session_id,
        "zqyy.site_id": record.site_id,
        "zqyy.target_id": record.target_id,
        "zqyy.partition_key": partition_key_of(record.site_id, record.target_id) if record.dagster_run_id else None,
        "zqyy.input_hash": input_hash,
        "zqyy.memo_hit": False,
        "zqyy.trigger_type": record.trigger_type,
        "zqyy.streamed": record.streamed,
        "zqyy.prompt_version": record.prompt_version,
        "dagster.run_id": record.dagster_run_id,
    }


class CallTrace:
    """One call's span; a context manager that ends it (an escaping error sets ``error.type``)."""

    def __init__(self, span: Span | None) -> None:
        self.span = span

    @classmethod
    def start(cls, record: CallRecord, *, input_hash: str | None = None) -> CallTrace:
        span = _start(span_name(record.app_name), _call_attributes(record, input_hash), record.dagster_run_id)
        if span is not None and telemetry.capture_content():
            span.set_attribute("gen_ai.input.messages", _messages("user", record.request_prompt))
        return cls(span)

    def __enter__(self) -> CallTrace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.span is None:
            return
        if exc is not None:
            self.error(exc)
        self.span.end()

    # ------------------------------------------------------------------------ what happened

    def attempt_failed(self, number: int, error: AttemptError, delay_s: float) -> None:
        """A failed attempt that will be retried after ``delay_s``."""
        if self.span is None:
            return
        self.span.add_event(
            "zqyy.llm.retry",
            _clean(
                {
                    "zqyy.attempt": number,
                    "error.type": error.code or error.kind,
                    "zqyy.error_kind": error.kind,
                    "zqyy.retry_delay_s": round(delay_s, 3),
                    "gen_ai.usage.input_tokens": error.tokens_in,
                    "gen_ai.usage.output_tokens": error.tokens_out,
                }
            ),
        )

    def error(self, exc: BaseException) -> None:
        """The call ended without an answer: a refusal, a failure, a time-out, an interruption."""
        if self.span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        if isinstance(exc, GeneratorExit):  # a stream's reader went away
            kind = "Cancelled"
        elif isinstance(exc, GuardRefused):
            kind = exc.reason
            self.span.add_event(
                "zqyy.llm.guard_refused", _clean({"zqyy.guard.reason": exc.reason, "zqyy.ledger_id": exc.ledger_id})
            )
        elif isinstance(exc, LLMError):
            kind = exc.code or type(exc).__name__
            if exc.attempts:
                self.span.set_attribute("zqyy.attempts", exc.attempts)
        else:
            kind = type(exc).__name__
        self.span.set_attribute("error.type", kind)
        self.span.set_status(Status(StatusCode.ERROR, str(exc)[:500]))

    def tokens(self, tokens_in: int, tokens_out: int, cost_cny: float | None = None) -> None:
        """What the call spent (a failed call's attempts cost tokens too)."""
        if self.span is None:
            return
        self.span.set_attributes(
            _clean(
                {
                    "gen_ai.usage.input_tokens": tokens_in,
                    "gen_ai.usage.output_tokens": tokens_out,
                    "zqyy.cost_cny": cost_cny,
                }
            )
        )

    def answered(self, answer: AppAnswer) -> None:
        """A call that gave an answer (``service.call_app``)."""
        if self.span is None:
            return
        payload = answer.payload
        self.finished(
            tokens_in=answer.tokens_in,
            tokens_out=answer.tokens_out,
            cost_cny=answer.cost_cny,
            attempts=answer.attempts,
            model=answer.model,
            session_id=answer.session_id,
            request_id=answer.request_id,
            ledger_id=answer.ledger_id,
            finish_reason=answer.finish_reason,
            text=lambda: payload["text"] if set(payload) == {"text"} else json.dumps(payload, ensure_ascii=False),
        )

    def finished(
        self,
        *,
        tokens_in: int,
        tokens_out: int,
        cost_cny: float,
        attempts: int,
        model: str | None,
        session_id: str | None,
        request_id: str | None,
        ledger_id: int | None,
        finish_reason: str | None,
        text: Callable[[], str],
    ) -> None:
        """The call's answer and what it cost; ``text()`` is asked only when content is captured."""
        if self.span is None:
            return
        self.tokens(tokens_in, tokens_out, cost_cny)
        self.span.set_attributes(
            _clean(
                {
                    "zqyy.attempts": attempts,
                    "gen_ai.response.model": model,
                    "gen_ai.conversation.id": session_id,
                    "gen_ai.response.id": request_id,
                    "gen_ai.response.finish_reasons": [finish_reason] if finish_reason else None,
                    "zqyy.ledger_id": ledger_id,
                }
            )
        )
        if telemetry.capture_content():
            self.span.set_attribute("gen_ai.output.messages", _messages("assistant", text(), finish_reason))

    def ledger_row(self, ledger_id: int) -> None:
        if self.span is not None:
            self.span.set_attribute("zqyy.ledger_id", ledger_id)


def memo_hit_span(
    *,
    app_name: str,
    provider: str,
    site_id: int,
    target_id: str,
    input_hash: str,
    dagster_run_id: str | None,
    trigger_type: str,
    tokens_avoided: int | None = None,
    cost_avoided_cny: float | None = None,
) -> None:
    """An answer memoization gave (no call): a span of no duration with ``zqyy.memo_hit=true``."""
    if telemetry.tracer() is None:
        return
    span = _start(
        span_name(app_name),
        {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.provider.name": provider,
            "gen_ai.agent.name": app_name,
            "zqyy.site_id": site_id,
            "zqyy.target_id": target_id,
            "zqyy.partition_key": partition_key_of(site_id, target_id) if dagster_run_id else None,
            "zqyy.input_hash": input_hash,
            "zqyy.memo_hit": True,
            "zqyy.trigger_type": trigger_type,
            "zqyy.tokens_avoided": tokens_avoided,
            "zqyy.cost_avoided_cny": cost_avoided_cny,
            "gen_ai.usage.input_tokens": 0,
            "gen_ai.usage.output_tokens": 0,
            "dagster.run_id": dagster_run_id,
        },
        dagster_run_id,
    )
    if span is not None:
        span.end()
