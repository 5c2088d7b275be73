"""One ``call_app`` through one route: configuration, the attempts, the booking, the answer.

``LLMService.call_app`` (``service.py``) picks the route (``providers.py``) and, when the primary
cannot answer, the fallback; each route's call is made here: the offline analyst at once, or a
remote provider (DashScope's Application API, an OpenAI-compatible server) under the guards, the
request cap and the retry loop, booked in the ledger. No Dagster here.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zqyy_assets.core.apps import CHAT_APP, get_app
from zqyy_assets.core.llm import ledger, offline
from zqyy_assets.core.llm.booking import time_left
from zqyy_assets.core.llm.client import CallResult, DashScopeClient, Turn
from zqyy_assets.core.llm.correction import Correction
from zqyy_assets.core.llm.errors import LLMConfigError
from zqyy_assets.core.llm.ledger import ms_since
from zqyy_assets.core.llm.openai_client import OpenAIChatClient
from zqyy_assets.core.llm.providers import Route
from zqyy_assets.core.llm.retry import RetriesExhausted
from zqyy_assets.core.llm.tracing import CallTrace

if TYPE_CHECKING:
    from zqyy_assets.core.llm.service import LLMService


@dataclass(frozen=True)
class AppAnswer:
    payload: dict[str, Any]
    tokens_in: int
    tokens_out: int
    session_id: str | None
    latency_ms: int
    attempts: int
    provider: str
    model: str
    request_id: str | None
    prompt_version: str
    ledger_id: int | None = None
    cost_cny: float = 0.0  # what the call cost, every attempt's tokens priced at their model
    finish_reason: str | None = None
    route: Route | None = None  # the route that answered (its memo key: ``providers.Route``)
    fallback_for: str | None = None  # the primary provider, when the fallback answered

    @property
    def tokens_total(self) -> int:
        return self.tokens_in + self.tokens_out


@dataclass(frozen=True)
class Call:
    """One ``call_app``'s question, whichever route answers it."""

    app_name: str
    prompt: str | dict[str, Any]
    prompt_text: str
    site_id: int
    target_id: str | None
    session_id: str | None
    biz_params: dict[str, Any] | None
    dagster_run_id: str | None
    correction: Correction | None = None  # a re-ask after an answer outside its schema


def openai_config(service: LLMService, record: ledger.CallRecord) -> tuple[str, OpenAIChatClient]:
    """The model and client an OpenAI-compatible call needs; a missing one is a permanent error, booked."""
    app_name = record.app_name
    if not record.model:
        raise service.stop_before_send(
            record,
            LLMConfigError(
                f"no model for {app_name}: set ZQYY_LLM_MODEL or ZQYY_LLM_MODEL_{app_name.upper()}",
                app_name=app_name,
                code="ModelMissing",
            ),
        )
    if service.openai_client is None:
        raise service.stop_before_send(
            record,
            LLMConfigError(
                "provider openai needs OPENAI_BASE_URL (or OPENAI_API_KEY for api.openai.com)",
                app_name=app_name,
                code="ApiKeyMissing",
            ),
        )
    return record.model, service.openai_client


def dashscope_config(service: LLMService, record: ledger.CallRecord) -> tuple[str, DashScopeClient]:
    """The app id and client a real call needs; a missing one is a permanent error, booked."""
    app_name = record.app_name
    if not record.app_id:
        raise service.stop_before_send(
            record,
            LLMConfigError(
                f"no Bailian app id for {app_name}: set {get_app(app_name).app_id_env}",
                app_name=app_name,
                code="AppIdMissing",
            ),
        )
    if service.client is None:
        raise service.stop_before_send(
            record,
            LLMConfigError("provider dashscope needs DASHSCOPE_API_KEY", app_name=app_name, code="ApiKeyMissing"),
        )
    return record.app_id, service.client


def answer_through(
    service: LLMService,
    call: Call,
    route: Route,
    trigger_type: str,
    input_hash: str | None,
    fallback_for: str | None = None,
) -> AppAnswer:
    """The call through ``route``: its own ledger row and span; a fallback's answer (``fallback_for``:
    the primary provider) carries ``"_provider"`` in its JSON."""
    record = service.call_record(
        call.app_name,
        call.prompt_text if call.correction is None else call.correction.standalone(call.prompt_text),
        site_id=call.site_id,
        target_id=call.target_id,
        session_id=call.session_id,
        dagster_run_id=call.dagster_run_id,
        trigger_type=trigger_type,
        route=route,
        fallback_for=fallback_for,
    )
    with CallTrace.start(record, input_hash=input_hash) as trace:
        if route.provider == "offline":
            answer = _offline_answer(service, call.prompt, record, time.monotonic())
        else:
            turn = Turn(call.prompt_text, call.session_id, call.correction)
            answer = _remote_answer(service, _sender(service, call, record, turn), turn, record, trace)
        answer = dataclasses.replace(answer, route=route, fallback_for=fallback_for)
        if fallback_for and get_app(call.app_name).json_answer:
            answer = dataclasses.replace(answer, payload={**answer.payload, "_provider": route.provider})
        trace.answered(answer)
        return answer


Send = Callable[[float | None, Callable[[str], None]], CallResult]


def _sender(service: LLMService, call: Call, record: ledger.CallRecord, turn: Turn) -> Send:
    """One request of the call through its provider's client (configuration checked first):
    ``send(timeout_s, note)``, the turn's re-ask (if any) carried the provider's way and ``note``d."""
    app_name = record.app_name
    if record.provider == "openai":
        model, openai_client = openai_config(service, record)

        def send_openai(timeout_s: float | None, note: Callable[[str], None]) -> CallResult:
            turn.take_note(note)
            return openai_client.complete(
                app_name, model, call.prompt_text, correction=turn.correction, timeout_s=timeout_s
            )

        return send_openai
    app_id, client = dashscope_config(service, record)

    def send_dashscope(timeout_s: float | None, note: Callable[[str], None]) -> CallResult:
        prompt, session_id = turn.next_request(note)
        return client.complete(
            app_name, app_id, prompt, session_id=session_id, biz_params=call.biz_params, timeout_s=timeout_s
        )

    return send_dashscope


def _remote_answer(
    service: LLMService, send: Send, turn: Turn, record: ledger.CallRecord, trace: CallTrace
) -> AppAnswer:
    app_name, spec, started = record.app_name, get_app(record.app_name), time.monotonic()
    left = service.requests_left(record)
    ledger_id = service.admit(record)
    trace.ledger_row(ledger_id)
    on_retry = service.retry_listener(ledger_id, trace.attempt_failed)  # the span and the in-flight cap hear it
    retrying = service.retrying(left, label=app_name, started=started, on_retry=on_retry)

    sent = [0]  # requests sent: each counted in the row first (a failed count sends nothing)

    def attempt() -> tuple[CallResult, dict[str, Any]]:
        service.guards.resume(ledger_id)  # a slot again after a throttled attempt gave it back
        timeout_s = time_left(retrying, app_name)
        service.note_attempt(ledger_id, retrying.attempts)
        sent[0] = retrying.attempts
        result = send(timeout_s, lambda reask: service.note_reask(ledger_id, reask))
        if not spec.json_answer:
            return result, {"text": result.text}
        return result, turn.parse(result, app_name)  # an answer not JSON: the next attempt re-asks

    try:
        result, payload = retrying.call(attempt)
    except RetriesExhausted as failure:
        cost = service.book_failure(ledger_id, record, failure, started)
        trace.tokens(failure.tokens_in, failure.tokens_out, cost)
        raise failure.as_llm_error() from failure.error
    except BaseException:
        # Interrupted (KeyboardInterrupt, run termination): close the row with the requests sent
        # (the one in flight included) and what the failed ones cost, as the upstream counts them.
        spent = {"attempts": sent[0], "tokens_in": retrying.tokens_in, "tokens_out": retrying.tokens_out}
        service.book_interrupted(ledger_id, started, "Interrupted", "call interrupted before an answer", **spent)
        raise

    tokens_in = retrying.tokens_in + result.usage.tokens_in
    tokens_out = retrying.tokens_out + result.usage.tokens_out
    cost = service.prices.cost(result.usage.model, tokens_in, tokens_out, result.usage.parts)
    latency_ms = ms_since(started)
    service.book_success(
        ledger_id,
        record,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        latency_ms=latency_ms,
        attempts=retrying.attempts,
        response_text=result.text,
        session_id=result.session_id,
        request_id=result.request_id,
        model=result.usage.model,
        cost_cny=cost,
    )
    return AppAnswer(
        payload=payload,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        session_id=result.session_id,
        latency_ms=latency_ms,
        attempts=retrying.attempts,
        provider=record.provider,
        model=result.usage.model or record.model or "",
        request_id=result.request_id,
        prompt_version=record.prompt_version or "",
        ledger_id=ledger_id,
        cost_cny=cost,
        finish_reason=result.finish_reason,
    )


def _offline_answer(
    service: LLMService, prompt: str | dict[str, Any], record: ledger.CallRecord, started: float
) -> AppAnswer:
    app_name = record.app_name
    payload = offline.analyse(app_name, prompt)
    text = payload["text"] if app_name == CHAT_APP else json.dumps(payload, ensure_ascii=False)
    latency_ms = ms_since(started)
    with service.connection() as conn:
        ledger_id = ledger.record_running(conn, record)
        ledger.finish_call(
            conn,
            ledger_id,
            status="success",
            latency_ms=latency_ms,
            attempts=1,
            response_text=text,
            session_id=record.session_id,
            model=offline.OFFLINE_MODEL,
        )
    if not get_app(app_name).json_answer:
        payload = {"text": payload["text"]}
    return AppAnswer(
        payload=payload,
        tokens_in=0,
        tokens_out=0,
        session_id=record.session_id,
        latency_ms=latency_ms,
        attempts=1,
        provider="offline",
        model=offline.OFFLINE_MODEL,
        request_id=None,
        prompt_version=record.prompt_version or "",
        ledger_id=ledger_id,
    )
