"""The LLM service: guards, retries, the ledger and the providers behind one call.

``LLMService`` has no Dagster dependency, so the API process uses it for the chat; the Dagster
resource (``defs/ai/resources.py``) is a thin layer over it that adds materialization metadata
and turns permanent errors into ``dg.Failure(allow_retries=False)``.

One call, in order:

1. Provider ``offline``: the offline analyst answers at once (no guards, zero tokens); one
   ``success`` ledger row.
2. Configuration: a missing app id or API key is a permanent error (one ``failed`` row).
3. Request cap: when the call belongs to a Dagster run, requests already spent on the same
   answer (run, app, site, target) by earlier step attempts and by answers rejected as
   outside their schema are subtracted from ``MAX_REQUESTS_PER_ANSWER``; nothing left is a
   permanent error.
4. Guards (``guards.py``): circuit breaker, rate limit, budget, which writes the ``running`` row.
5. Attempts (``retry.py``): up to ``max_attempts`` (never above what the cap left), all within
   the answer's deadline (``answer_deadline_seconds``, counted from the call's start; each
   request's timeout is cut to what is left). Permanent errors stop at once; transient ones
   back off exponentially with jitter, throttling longer.
6. The ledger row is finished (tokens of every attempt, invalid answers included, their cost
   in CNY (``core/pricing.py``), latency end to end, attempts) as ``success``, ``failed`` or
   ``timeout``, and the breaker learns the outcome once per call.

Each call is one ``invoke_agent {app}`` span when tracing is on (``tracing.py``): retries and
refusals are its events, the outcome its attributes.

Every call that does not end in success (a refusal, a timeout, a failure, one stopped before
sending) raises an alert (``call_alerts.py``), counted per (site, app, alert type).

How the client's retries and an asset's ``RetryPolicy`` combine under the per-answer request
cap: ``settings.py``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from zqyy_assets.core.apps import CHAT_APP, get_app, prompt_version
from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.llm import ledger, offline, stream, stream_bridge
from zqyy_assets.core.llm.booking import CallBooking, time_left
from zqyy_assets.core.llm.budget import BudgetStatus
from zqyy_assets.core.llm.client import CallResult, DashScopeClient, parse_answer
from zqyy_assets.core.llm.errors import LLMConfigError, PermanentLLMError
from zqyy_assets.core.llm.guards import Guards, GuardSettings
from zqyy_assets.core.llm.ledger import ms_since
from zqyy_assets.core.llm.retry import Backoff, RetriesExhausted, Retrying
from zqyy_assets.core.llm.settings import MAX_REQUESTS_PER_ANSWER, LLMSettings
from zqyy_assets.core.llm.stream import ChatDelta
from zqyy_assets.core.llm.tracing import CallTrace

logger = logging.getLogger(__name__)


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

    @property
    def tokens_total(self) -> int:
        return self.tokens_in + self.tokens_out


class LLMService(CallBooking):
    """Thread-safe; one per process is enough. ``close()`` releases its database pool."""

    def __init__(self, settings: LLMSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if not settings.database_url:
            raise LLMConfigError("the LLM layer needs database_url (DATABASE_URL) for its guards and ledger")
        self.settings = settings
        self._database_url = settings.database_url
        self._sleep = sleep
        self._backoff = Backoff(
            base_s=settings.retry_base_delay_seconds,
            max_s=settings.retry_max_delay_seconds,
            throttle_factor=settings.throttle_delay_factor,
        )
        self._pool: ConnectionPool[DictConnection] | None = None
        self._pool_lock = threading.Lock()
        self.prices = settings.price_table()
        self.guards = Guards(self.connection, GuardSettings.from_settings(settings, self.prices), sleep=sleep)
        self.client: DashScopeClient | None = None
        api_key = settings.api_key_value()
        if api_key:
            self.client = DashScopeClient(
                api_key=api_key,
                base_url=settings.base_url,
                workspace=settings.workspace,
                timeout_s=settings.request_timeout_seconds,
            )

    # ------------------------------------------------------------------------------ plumbing

    @property
    def provider(self) -> str:
        return self.settings.resolved_provider()

    @contextmanager
    def connection(self) -> Iterator[DictConnection]:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self._database_url,
                    connection_class=DictConnection,
                    min_size=1,
                    max_size=self.settings.db_pool_size,
                    kwargs={"autocommit": True, "row_factory": dict_row},
                    open=True,
                    name="zqyy-llm",
                )
            pool = self._pool
        with pool.connection() as conn:
            yield conn

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def __enter__(self) -> LLMService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def budget(self) -> BudgetStatus:
        """Today's and this month's token use against the limits."""
        return self.guards.budget()

    def retrying(self, max_attempts: int, *, started: float | None = None, **kwargs: Any) -> Retrying:
        """The retry loop with this service's backoff and clock; ``started`` (``time.monotonic()``)
        starts the answer's deadline."""
        deadline = None if started is None else started + self.settings.answer_deadline_seconds
        return Retrying(
            max_attempts=max_attempts, wait=self._backoff.wait, sleep=self._sleep, deadline=deadline, **kwargs
        )

    # ---------------------------------------------------------------------- ledger and guards

    def call_record(
        self,
        app_name: str,
        prompt_text: str,
        *,
        site_id: int,
        target_id: str | None,
        session_id: str | None,
        dagster_run_id: str | None,
        trigger_type: str,
        streamed: bool = False,
    ) -> ledger.CallRecord:
        return ledger.CallRecord(
            site_id=site_id,
            app_name=app_name,
            app_id=self.settings.app_id(app_name),
            provider=self.provider,
            request_prompt=prompt_text,
            prompt_version=prompt_version(app_name),
            model=offline.OFFLINE_MODEL if self.provider == "offline" else None,
            session_id=session_id,
            dagster_run_id=dagster_run_id,
            trigger_type=trigger_type,
            target_id=target_id,
            streamed=streamed,
        )

    def check_config(self, record: ledger.CallRecord) -> tuple[str, DashScopeClient]:
        """The app id and client a real call needs; a missing one is a permanent error, booked."""
        app_name = record.app_name
        if not record.app_id:
            raise self.stop_before_send(
                record,
                LLMConfigError(
                    f"no Bailian app id for {app_name}: set {get_app(app_name).app_id_env}",
                    app_name=app_name,
                    code="AppIdMissing",
                ),
            )
        if self.client is None:
            raise self.stop_before_send(
                record,
                LLMConfigError("provider dashscope needs DASHSCOPE_API_KEY", app_name=app_name, code="ApiKeyMissing"),
            )
        return record.app_id, self.client

    def reject_answer(self, answer: AppAnswer, reason: str) -> None:
        """Book an answer the caller found invalid as a failed call (``ledger.reject_answer``)."""
        if answer.ledger_id is not None:
            self.reject_call(answer.ledger_id, reason)

    def _requests_left(self, record: ledger.CallRecord) -> int:
        """What the per-answer request cap leaves this call (``max_attempts`` outside a run)."""
        if not record.dagster_run_id:
            return self.settings.max_attempts
        with self.connection() as conn:
            spent = ledger.failed_attempts_for_answer(
                conn,
                dagster_run_id=record.dagster_run_id,
                app_name=record.app_name,
                site_id=record.site_id,
                target_id=record.target_id,
            )
        left = MAX_REQUESTS_PER_ANSWER - spent
        if left <= 0:
            raise self.stop_before_send(
                record,
                PermanentLLMError(
                    f"{spent} requests already spent on this answer in run {record.dagster_run_id} "
                    f"(cap {MAX_REQUESTS_PER_ANSWER}); not sending another",
                    app_name=record.app_name,
                    code="RequestCapReached",
                ),
            )
        return min(self.settings.max_attempts, left)

    # ---------------------------------------------------------------------------------- calls

    def call_app(
        self,
        app_name: str,
        prompt: str | dict[str, Any],
        *,
        site_id: int,
        target_id: str | None = None,
        session_id: str | None = None,
        biz_params: dict[str, Any] | None = None,
        dagster_run_id: str | None = None,
        trigger_type: str = "event",
        input_hash: str | None = None,
    ) -> AppAnswer:
        """Ask one app for one answer (parsed JSON; the chat's text as ``{"text": ...}``).

        ``target_id`` names the answer (member id, ``assistant_member``, ``time_dimension__area``):
        with ``dagster_run_id`` it keys the per-answer request cap across step retries, so give it
        whenever one run asks for several answers of the same app and site. ``input_hash`` (the
        memoization key) only labels the call's span (``tracing.py``).
        """
        prompt_text = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False, default=str)
        record = self.call_record(
            app_name,
            prompt_text,
            site_id=site_id,
            target_id=target_id,
            session_id=session_id,
            dagster_run_id=dagster_run_id,
            trigger_type=trigger_type,
        )
        with CallTrace.start(record, input_hash=input_hash) as trace:
            if self.provider == "offline":
                answer = self._offline_answer(prompt, record, time.monotonic())
            else:
                answer = self._dashscope_answer(prompt_text, record, biz_params, trace)
            trace.answered(answer)
            return answer

    def _dashscope_answer(
        self, prompt_text: str, record: ledger.CallRecord, biz_params: dict[str, Any] | None, trace: CallTrace
    ) -> AppAnswer:
        app_name, spec, started = record.app_name, get_app(record.app_name), time.monotonic()
        app_id, client = self.check_config(record)
        retrying = self.retrying(
            self._requests_left(record), label=app_name, started=started, on_retry=trace.attempt_failed
        )
        ledger_id = self.admit(record)
        trace.ledger_row(ledger_id)
        sent = [0]  # requests sent: each counted in the row first (a failed count sends nothing)

        def attempt() -> tuple[CallResult, dict[str, Any]]:
            timeout_s = time_left(retrying, app_name)
            self.note_attempt(ledger_id, retrying.attempts)
            sent[0] = retrying.attempts
            session_id = record.session_id
            result = client.complete(
                app_name, app_id, prompt_text, session_id=session_id, biz_params=biz_params, timeout_s=timeout_s
            )
            if not spec.json_answer:
                return result, {"text": result.text}
            parsed = parse_answer(result.text, app_name=app_name, usage=result.usage, request_id=result.request_id)
            return result, parsed

        try:
            result, payload = retrying.call(attempt)
        except RetriesExhausted as failure:
            cost = self.book_failure(ledger_id, record, failure, started)
            trace.tokens(failure.tokens_in, failure.tokens_out, cost)
            raise failure.as_llm_error() from failure.error
        except BaseException:
            # Interrupted (KeyboardInterrupt, run termination): close the row with the requests sent
            # (the one in flight included) and what the failed ones cost, as the upstream counts them.
            spent = {"attempts": sent[0], "tokens_in": retrying.tokens_in, "tokens_out": retrying.tokens_out}
            self.book_interrupted(ledger_id, started, "Interrupted", "call interrupted before an answer", **spent)
            raise

        tokens_in = retrying.tokens_in + result.usage.tokens_in
        tokens_out = retrying.tokens_out + result.usage.tokens_out
        cost = self.prices.cost(result.usage.model, tokens_in, tokens_out, result.usage.parts)
        latency_ms = ms_since(started)
        self.book_success(
            ledger_id,
            app_name,
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
            provider="dashscope",
            model=result.usage.model,
            request_id=result.request_id,
            prompt_version=record.prompt_version or "",
            ledger_id=ledger_id,
            cost_cny=cost,
            finish_reason=result.finish_reason,
        )

    def _offline_answer(self, prompt: str | dict[str, Any], record: ledger.CallRecord, started: float) -> AppAnswer:
        app_name = record.app_name
        payload = offline.analyse(app_name, prompt)
        text = payload["text"] if app_name == CHAT_APP else json.dumps(payload, ensure_ascii=False)
        latency_ms = ms_since(started)
        with self.connection() as conn:
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

    async def acall_app(self, app_name: str, prompt: str | dict[str, Any], **kwargs: Any) -> AppAnswer:
        """``call_app`` in a worker thread, for the API's event loop."""
        return await asyncio.to_thread(self.call_app, app_name, prompt, **kwargs)

    # ---------------------------------------------------------------------------------- chat

    def stream_chat(self, prompt: str, **kwargs: Any) -> Iterator[ChatDelta]:
        """The chat app's answer as text deltas; see ``stream.stream_chat``."""
        return stream.stream_chat(self, prompt, **kwargs)

    def astream_chat(self, prompt: str, **kwargs: Any) -> AsyncIterator[ChatDelta]:
        """``stream_chat`` for asyncio (FastAPI): each blocking step runs in a worker thread."""
        return stream_bridge.iterate_in_threads(stream.stream_chat(self, prompt, **kwargs))
