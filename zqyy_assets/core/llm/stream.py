"""The chat app's answer streamed as text deltas, through the service's guards, retries and ledger.

Errors before the first text are retried like a call (``retry.py``); once text has been yielded
a failure raises ``StreamInterrupted`` (with ``partial_text``) after what came: the reader has
seen it, a silent retry would repeat it. The service's ``code`` decides the class of an
in-stream error, not its status. After the last text comes one empty delta with ``done=True``
and the call's tokens; the ledger row is final before it is yielded. A reader that stops early
(``close()``) leaves the row failed as ``Cancelled`` with what was said, blaming no one.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zqyy_assets.core.apps import CHAT_APP
from zqyy_assets.core.llm import calls, ledger, offline
from zqyy_assets.core.llm.booking import time_left
from zqyy_assets.core.llm.client import StreamChunk, Usage
from zqyy_assets.core.llm.errors import AttemptError, CircuitOpen, PermanentLLMError, StreamInterrupted
from zqyy_assets.core.llm.ledger import CallRecord, ms_since
from zqyy_assets.core.llm.providers import Route, fallback_for
from zqyy_assets.core.llm.retry import RetriesExhausted
from zqyy_assets.core.llm.tracing import CallTrace

if TYPE_CHECKING:
    from zqyy_assets.core.llm.service import LLMService


@dataclass(frozen=True)
class ChatDelta:
    """One piece of a streamed chat answer. The last one has ``done=True`` and the call's tokens."""

    text: str
    session_id: str | None
    done: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    ledger_id: int | None = None


def stream_chat(
    service: LLMService,
    prompt: str,
    *,
    site_id: int,
    session_id: str | None = None,
    biz_params: dict[str, Any] | None = None,
    target_id: str | None = None,
    trigger_type: str = "chat",
    dagster_run_id: str | None = None,
) -> Generator[ChatDelta, None, None]:
    """The chat's answer as ``ChatDelta(text, session_id)`` deltas, keeping the session id.

    Through the chat app's route; the fallback route (``providers.py``) streams instead when the
    primary is refused by its open breaker or fails permanently before any text."""
    call = _ChatCall(prompt, site_id, session_id, biz_params, target_id, trigger_type, dagster_run_id)
    primary = service.route(CHAT_APP)
    said_any = False
    try:
        for delta in _stream_route(service, call, primary):
            said_any = True
            yield delta
    except (CircuitOpen, PermanentLLMError) as error:
        fallback = None if said_any else fallback_for(service.settings, CHAT_APP, primary, error)
        if fallback is None:
            raise
        yield from _stream_route(service, call, fallback, fallback_for=primary.provider)


@dataclass(frozen=True)
class _ChatCall:
    prompt: str
    site_id: int
    session_id: str | None
    biz_params: dict[str, Any] | None
    target_id: str | None
    trigger_type: str
    dagster_run_id: str | None


def _stream_route(
    service: LLMService, call: _ChatCall, route: Route, fallback_for: str | None = None
) -> Generator[ChatDelta, None, None]:
    started = time.monotonic()
    if route.provider == "openai" and not call.session_id:
        # An OpenAI-compatible server keeps no session: the chat still gets an id to name its conversation.
        call = dataclasses.replace(call, session_id=uuid.uuid4().hex)
    record = service.call_record(
        CHAT_APP,
        call.prompt,
        site_id=call.site_id,
        target_id=call.target_id,
        session_id=call.session_id,
        dagster_run_id=call.dagster_run_id,
        trigger_type=call.trigger_type,
        streamed=True,
        route=route,
        fallback_for=fallback_for,
    )
    with CallTrace.start(record) as trace:
        if route.provider == "offline":
            yield from _offline_stream(service, call.prompt, record, started, trace)
        else:
            yield from _remote_stream(service, _opener(service, call, record), record, started, trace)


def _opener(
    service: LLMService, call: _ChatCall, record: CallRecord
) -> Callable[[float | None], Iterator[StreamChunk]]:
    """One attempt's stream through the record's provider (configuration checked first, booked if missing)."""
    if record.provider == "openai":
        model, openai_client = calls.openai_config(service, record)
        return lambda timeout_s: openai_client.stream(CHAT_APP, model, call.prompt, timeout_s=timeout_s)
    app_id, client = calls.dashscope_config(service, record)
    return lambda timeout_s: client.stream(
        CHAT_APP, app_id, call.prompt, session_id=record.session_id, biz_params=call.biz_params, timeout_s=timeout_s
    )


def _remote_stream(
    service: LLMService,
    open_stream: Callable[[float | None], Iterator[StreamChunk]],
    record: CallRecord,
    started: float,
    trace: CallTrace,
) -> Generator[ChatDelta, None, None]:
    ledger_id = service.admit(record)
    trace.ledger_row(ledger_id)
    session_id = record.session_id

    said = _Said(session_id)
    retrying = service.retrying(
        service.settings.max_attempts,
        started=started,
        retryable=lambda err: not said.parts and err.kind != "permanent",
        on_retry=trace.attempt_failed,
    )
    finished = False  # the ledger row is final
    sent = 0  # requests sent: each counted in the row first (a failed count sends nothing)
    try:
        try:
            for attempt in retrying:
                with attempt:
                    timeout_s = time_left(retrying, CHAT_APP)
                    service.note_attempt(ledger_id, retrying.attempts)
                    sent = retrying.attempts
                    chunks = open_stream(timeout_s)
                    yield from _attempt(chunks, said)
        except RetriesExhausted as failure:
            cost = service.book_failure(ledger_id, record, failure, started, partial=said.text)
            trace.tokens(failure.tokens_in, failure.tokens_out, cost)
            finished = True
            raise _final_error(failure, said.text) from failure.error
        tokens_in, tokens_out = retrying.tokens_in + said.usage.tokens_in, retrying.tokens_out + said.usage.tokens_out
        cost = service.prices.cost(said.usage.model, tokens_in, tokens_out, said.usage.parts)
        service.book_success(
            ledger_id,
            record,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_ms=ms_since(started),
            attempts=retrying.attempts,
            response_text=said.text,
            session_id=said.session_id,
            request_id=said.request_id,
            model=said.usage.model,
            cost_cny=cost,
        )
        finished = True
        trace.finished(
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_cny=cost,
            attempts=retrying.attempts,
            model=said.usage.model,
            session_id=said.session_id,
            request_id=said.request_id,
            ledger_id=ledger_id,
            finish_reason="stop",
            text=lambda: said.text,
        )
        yield ChatDelta("", said.session_id, done=True, tokens_in=tokens_in, tokens_out=tokens_out, ledger_id=ledger_id)
    finally:
        if not finished:
            tokens_in = retrying.tokens_in + said.usage.tokens_in
            tokens_out = retrying.tokens_out + said.usage.tokens_out
            cost = service.prices.cost(said.usage.model, tokens_in, tokens_out, said.usage.parts)
            trace.tokens(tokens_in, tokens_out, cost)
            service.book_interrupted(
                ledger_id,
                started,
                "Cancelled",
                "stream closed by the consumer before the end",
                attempts=sent,  # the requests sent, the one read when it closed included
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_cny=cost,
                response_text=said.text,
                session_id=said.session_id,
                request_id=said.request_id,
            )


@dataclass
class _Said:
    """What the stream has given the reader so far, across attempts, and the current attempt's usage."""

    session_id: str | None
    request_id: str | None = None
    parts: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _attempt(chunks: Iterator[StreamChunk], said: _Said) -> Iterator[ChatDelta]:
    """One attempt's deltas; a cut or an in-stream error raises ``AttemptError`` with its tokens."""
    said.usage, got_stop = Usage(), False
    try:
        for chunk in chunks:
            said.session_id = chunk.session_id or said.session_id
            said.request_id = chunk.request_id or said.request_id
            if chunk.usage.tokens_in or chunk.usage.tokens_out:
                said.usage = chunk.usage  # cumulative: the latest is the total
            got_stop = got_stop or chunk.finish_reason == "stop"
            if chunk.text or chunk.session_id:
                said.parts.append(chunk.text)
                yield ChatDelta(chunk.text, said.session_id)
        if not got_stop:
            raise AttemptError(
                "stream ended before finish_reason 'stop'",
                kind="transient",
                app_name=CHAT_APP,
                code="StreamCut",
                request_id=said.request_id,
            )
    except AttemptError as err:
        # The attempt's tokens came on its chunks, not on the error; the retry loop sums them.
        err.tokens_in, err.tokens_out = said.usage.tokens_in, said.usage.tokens_out
        err.model = said.usage.model or err.model
        said.usage = Usage()
        raise


def _final_error(failure: RetriesExhausted, said: str) -> Exception:
    err = failure.error
    if not said:
        return failure.as_llm_error()
    return StreamInterrupted(
        f"stream broke after {len(said)} characters: {err.code}: {err.message}",
        app_name=CHAT_APP,
        code=err.code,
        status_code=err.status_code,
        request_id=err.request_id,
        attempts=failure.attempts,
        partial_text=said,
    )


def _offline_stream(
    service: LLMService, prompt: str, record: CallRecord, started: float, trace: CallTrace
) -> Iterator[ChatDelta]:
    reply = offline.chat_reply(prompt)
    with service.connection() as conn:
        ledger_id = ledger.record_running(conn, record)
        ledger.finish_call(
            conn,
            ledger_id,
            status="success",
            latency_ms=ms_since(started),
            attempts=1,
            response_text=reply,
            session_id=record.session_id,
            model=offline.OFFLINE_MODEL,
        )
    trace.finished(
        tokens_in=0,
        tokens_out=0,
        cost_cny=0.0,
        attempts=1,
        model=offline.OFFLINE_MODEL,
        session_id=record.session_id,
        request_id=None,
        ledger_id=ledger_id,
        finish_reason="stop",
        text=lambda: reply,
    )
    for i in range(0, len(reply), 8):
        yield ChatDelta(reply[i : i + 8], record.session_id)
    yield ChatDelta("", record.session_id, done=True, ledger_id=ledger_id)
