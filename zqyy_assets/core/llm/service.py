"""The LLM service: guards, retries, the ledger and the providers behind one call.

``LLMService`` has no Dagster dependency, so the API process can use it for the chat; the
Dagster resource (``resources.py``) is a thin layer over it that adds materialization metadata
and turns permanent errors into ``dg.Failure(allow_retries=False)``.

One call, in order:

1. Provider ``offline``: the offline analyst answers at once (no guards, zero tokens); one
   ``success`` ledger row.
2. Configuration: a missing app id or API key is a permanent error (one ``failed`` row).
3. Request cap: when the call belongs to a Dagster run, requests already spent on the same
   answer (run, app, site, target) by earlier step attempts are subtracted from
   ``MAX_REQUESTS_PER_ANSWER``; nothing left is a permanent error.
4. Guards, as in the seeds: circuit breaker, then rate limit (waiting up to
   ``rate_max_wait_seconds`` for a token), then budget, which writes the ``running`` row.
   A refusal writes its row and raises ``CircuitOpen`` / ``RateLimited`` / ``BudgetExceeded``.
5. Attempts: up to ``max_attempts`` (never above what the cap left). Permanent errors stop at
   once; transient ones wait ``base * 2**(n-1)`` seconds (``throttle_delay_factor`` times
   longer for ``Throttling*``), capped at ``retry_max_delay_seconds``, with jitter (half the
   delay fixed, half random) so racing workers spread out.
6. The ledger row is finished (tokens of every attempt, invalid answers included, latency end
   to end, attempts), and the breaker learns the outcome once per call.

How the client's retries and an asset's ``RetryPolicy`` combine
----------------------------------------------------------------
Each answer gets at most ``MAX_REQUESTS_PER_ANSWER`` (4) requests in one Dagster run. With the
defaults (``max_attempts=3``), a transient failure surviving three attempts raises
``TransientLLMError``; a ``RetryPolicy`` re-runs the step, and the re-run's call for the same
answer is allowed ``4 - 3 = 1`` more request; after that the call fails with a permanent
``RequestCapReached`` and no request. The recommended pairing is ``max_attempts=2`` with
``RetryPolicy(max_retries=1, delay=30, backoff=EXPONENTIAL, jitter=PLUS_MINUS)``: two quick
tries, then one later step retry with two more, four in all. Permanent errors never reach the
RetryPolicy (``Failure(allow_retries=False)``). Outside a run (the API), ``max_attempts``
(at most 4) is the cap. Guard refusals send nothing and are not counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from zqyy_assets.core.apps import get_app, prompt_version
from zqyy_assets.core.llm import guards, offline
from zqyy_assets.core.llm.client import CallResult, DashScopeClient, Usage, parse_answer
from zqyy_assets.core.llm.errors import (
    AttemptError,
    BudgetExceeded,
    CircuitOpen,
    LLMConfigError,
    PermanentLLMError,
    RateLimited,
    StreamInterrupted,
    TransientLLMError,
)
from zqyy_assets.core.llm.settings import MAX_REQUESTS_PER_ANSWER, LLMSettings

logger = logging.getLogger(__name__)
T = TypeVar("T")
_END = object()


@dataclass(frozen=True)
class AppAnswer:
    payload: dict
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

    @property
    def tokens_total(self) -> int:
        return self.tokens_in + self.tokens_out


@dataclass(frozen=True)
class ChatDelta:
    """One piece of a streamed chat answer. The last one has ``done=True`` and the call's tokens."""

    text: str
    session_id: str | None
    done: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    ledger_id: int | None = None


class _FinalFailure(Exception):
    def __init__(self, error: AttemptError, attempts: int, tokens_in: int, tokens_out: int) -> None:
        self.error, self.attempts, self.tokens_in, self.tokens_out = error, attempts, tokens_in, tokens_out


class LLMService:
    """Thread-safe; one per process is enough. ``close()`` releases its database pool."""

    def __init__(self, settings: LLMSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if not settings.database_url:
            raise LLMConfigError("the LLM layer needs database_url (DATABASE_URL) for its guards and ledger")
        self.settings = settings
        self._sleep = sleep
        self._random = random.Random()
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        self._budget = guards.BudgetLimits(
            daily_limit=settings.daily_token_limit,
            monthly_limit=settings.monthly_token_limit,
            reserve_tokens=settings.budget_reserve_tokens,
            reservation_ttl_s=max(900.0, settings.request_timeout_seconds * MAX_REQUESTS_PER_ANSWER * 1.5),
            timezone=settings.budget_timezone,
        )
        self._breaker = guards.BreakerSettings(
            failure_threshold=settings.breaker_failure_threshold,
            cooldown_s=settings.breaker_cooldown_seconds,
            probe_timeout_s=settings.request_timeout_seconds * MAX_REQUESTS_PER_ANSWER + 60,
        )
        self._rate = guards.RateSettings(
            per_minute=settings.rate_per_minute,
            burst=settings.rate_burst,
            max_wait_s=settings.rate_max_wait_seconds,
        )
        self._client: DashScopeClient | None = None
        api_key = settings.api_key_value()
        if api_key:
            self._client = DashScopeClient(
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
    def connection(self) -> Iterator[psycopg.Connection]:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ConnectionPool(
                    self.settings.database_url,
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

    def budget(self) -> guards.BudgetStatus:
        with self.connection() as conn:
            return guards.budget_status(conn, self._budget)

    def _backoff(self, attempt: int, kind: str) -> float:
        s = self.settings
        delay = s.retry_base_delay_seconds * (2 ** (attempt - 1))
        if kind == "throttled":
            delay *= s.throttle_delay_factor
        delay = min(delay, max(s.retry_max_delay_seconds, s.retry_base_delay_seconds))
        return delay / 2 + self._random.uniform(0, delay / 2)

    # ------------------------------------------------------------------------------- guards

    def _stop_before_send(self, record: guards.CallRecord, error: PermanentLLMError) -> PermanentLLMError:
        with self.connection() as conn:
            guards.record_failure_before_send(conn, record, error.code or "ConfigError", error.message)
        return error

    def _admit(self, record: guards.CallRecord) -> tuple[int, bool]:
        """Run the guards in order; returns (ledger_id, is_half_open_probe) or raises GuardRefused."""
        app = record.app_name
        with self.connection() as conn:
            decision = guards.breaker_check(conn, app, self._breaker)
            if not decision.allowed:
                message = f"circuit breaker for {app} is {decision.state}; retry in {decision.retry_after_s or 0:.0f} s"
                guards.record_refusal(conn, record, "circuit_open", message)
                raise CircuitOpen(message, app_name=app, retry_after_s=decision.retry_after_s)
        try:
            waited = 0.0
            while True:
                with self.connection() as conn:
                    wait = guards.rate_try_acquire(conn, app, self._rate)
                if wait <= 0:
                    break
                if waited + wait > self._rate.max_wait_s:
                    message = (
                        f"rate limit for {app} ({self._rate.per_minute:g}/min, burst {self._rate.burst}) "
                        f"still exhausted after waiting {waited:.1f} s"
                    )
                    with self.connection() as conn:
                        guards.record_refusal(conn, record, "rate_limited", message)
                    raise RateLimited(message, app_name=app, retry_after_s=wait)
                self._sleep(wait)
                waited += wait
            with self.connection() as conn:
                ledger_id, status = guards.admit_call(conn, record, self._budget)
            if not status.allowed:
                raise BudgetExceeded(f"token budget exhausted: {status.reason}", app_name=app)
            return ledger_id, decision.probe
        except (RateLimited, BudgetExceeded):
            if decision.probe:
                with self.connection() as conn:
                    guards.breaker_release_probe(conn, app)
            raise

    def _finish_failed(
        self, app_name: str, ledger_id: int, failure: _FinalFailure, started: float, partial: str | None = None
    ) -> None:
        err = failure.error
        with self.connection() as conn:
            guards.finish_call(
                conn,
                ledger_id,
                status="failed",
                tokens_in=failure.tokens_in,
                tokens_out=failure.tokens_out,
                latency_ms=_ms_since(started),
                attempts=failure.attempts,
                response_text=partial if partial is not None else err.response_text,
                request_id=err.request_id,
                error_code=err.code,
                error_message=err.message[:2000],
            )
            state = guards.breaker_failure(conn, app_name, self._breaker, err.code)
        if state == "open":
            logger.warning("circuit breaker for %s is open after %s", app_name, err.code)

    def _raise_final(self, failure: _FinalFailure) -> None:
        err = failure.error
        kw = dict(
            app_name=err.app_name,
            code=err.code,
            status_code=err.status_code,
            request_id=err.request_id,
            attempts=failure.attempts,
        )
        if err.kind == "permanent":
            raise PermanentLLMError(err.message, **kw) from err
        raise TransientLLMError(f"{err.message} (after {failure.attempts} attempt(s))", **kw) from err

    def _attempts(self, app_name: str, max_attempts: int, attempt: Callable[[], T]) -> tuple[T, int, int, int]:
        """Run ``attempt`` with retries; returns (value, attempts, tokens_in, tokens_out) of failed tries."""
        tokens_in = tokens_out = 0
        for n in range(1, max_attempts + 1):
            try:
                return attempt(), n, tokens_in, tokens_out
            except AttemptError as err:
                tokens_in += err.tokens_in
                tokens_out += err.tokens_out
                if err.kind == "permanent" or n == max_attempts:
                    raise _FinalFailure(err, n, tokens_in, tokens_out) from err
                delay = self._backoff(n, err.kind)
                logger.info(
                    "%s attempt %d/%d failed (%s: %s); retrying in %.2f s",
                    app_name,
                    n,
                    max_attempts,
                    err.code,
                    err.message[:200],
                    delay,
                )
                self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    # ---------------------------------------------------------------------------- call_app

    def _record(
        self,
        app_name: str,
        prompt_text: str,
        *,
        site_id: int,
        app_id: str | None,
        target_id: str | None,
        session_id: str | None,
        dagster_run_id: str | None,
        trigger_type: str,
        streamed: bool = False,
        provider: str | None = None,
    ) -> guards.CallRecord:
        provider = provider or self.provider
        return guards.CallRecord(
            site_id=site_id,
            app_name=app_name,
            app_id=app_id,
            provider=provider,
            request_prompt=prompt_text,
            prompt_version=prompt_version(app_name),
            model=offline.OFFLINE_MODEL if provider == "offline" else None,
            session_id=session_id,
            dagster_run_id=dagster_run_id,
            trigger_type=trigger_type,
            target_id=target_id,
            streamed=streamed,
        )

    def _check_config(self, app_name: str, record: guards.CallRecord) -> tuple[str, DashScopeClient]:
        app_id = record.app_id
        if not app_id:
            raise self._stop_before_send(
                record,
                LLMConfigError(
                    f"no Bailian app id for {app_name}: set {get_app(app_name).app_id_env}",
                    app_name=app_name,
                    code="AppIdMissing",
                ),
            )
        if self._client is None:
            raise self._stop_before_send(
                record,
                LLMConfigError("provider dashscope needs DASHSCOPE_API_KEY", app_name=app_name, code="ApiKeyMissing"),
            )
        return app_id, self._client

    def call_app(
        self,
        app_name: str,
        prompt: str | dict,
        *,
        site_id: int,
        target_id: str | None = None,
        session_id: str | None = None,
        biz_params: dict | None = None,
        dagster_run_id: str | None = None,
        trigger_type: str = "event",
    ) -> AppAnswer:
        """Ask one app for one answer (parsed JSON; the chat's text as ``{"text": ...}``).

        ``target_id`` names the answer (member id, ``assistant_member``, ``time_dimension__area``):
        with ``dagster_run_id`` it keys the per-answer request cap across step retries, so give it
        whenever one run asks for several answers of the same app and site.
        """
        spec = get_app(app_name)
        prompt_text = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False, default=str)
        started = time.monotonic()
        record = self._record(
            app_name,
            prompt_text,
            site_id=site_id,
            app_id=self.settings.app_id(app_name),
            target_id=target_id,
            session_id=session_id,
            dagster_run_id=dagster_run_id,
            trigger_type=trigger_type,
        )
        if self.provider == "offline":
            return self._offline_answer(app_name, prompt, record, started)

        app_id, client = self._check_config(app_name, record)
        max_attempts = self.settings.max_attempts
        if dagster_run_id:
            with self.connection() as conn:
                spent = guards.failed_attempts_for_answer(
                    conn, dagster_run_id=dagster_run_id, app_name=app_name, site_id=site_id, target_id=target_id
                )
            left = MAX_REQUESTS_PER_ANSWER - spent
            if left <= 0:
                raise self._stop_before_send(
                    record,
                    PermanentLLMError(
                        f"{spent} requests already spent on this answer in run {dagster_run_id} "
                        f"(cap {MAX_REQUESTS_PER_ANSWER}); not sending another",
                        app_name=app_name,
                        code="RequestCapReached",
                    ),
                )
            max_attempts = min(max_attempts, left)

        ledger_id, _probe = self._admit(record)

        def attempt() -> tuple[CallResult, dict]:
            result = client.complete(app_name, app_id, prompt_text, session_id=session_id, biz_params=biz_params)
            if spec.json_answer:
                payload = parse_answer(result.text, app_name=app_name, usage=result.usage, request_id=result.request_id)
            else:
                payload = {"text": result.text}
            return result, payload

        try:
            (result, payload), attempts, failed_in, failed_out = self._attempts(app_name, max_attempts, attempt)
        except _FinalFailure as failure:
            self._finish_failed(app_name, ledger_id, failure, started)
            self._raise_final(failure)
        except BaseException:
            # Interrupted (KeyboardInterrupt, run termination): close the row, count nothing.
            with self.connection() as conn:
                guards.finish_call(
                    conn,
                    ledger_id,
                    status="failed",
                    latency_ms=_ms_since(started),
                    error_code="Interrupted",
                    error_message="call interrupted before an answer",
                )
            raise

        tokens_in = failed_in + result.usage.tokens_in
        tokens_out = failed_out + result.usage.tokens_out
        latency_ms = _ms_since(started)
        with self.connection() as conn:
            guards.finish_call(
                conn,
                ledger_id,
                status="success",
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                latency_ms=latency_ms,
                attempts=attempts,
                response_text=result.text,
                session_id=result.session_id,
                request_id=result.request_id,
                model=result.usage.model,
            )
            guards.breaker_success(conn, app_name)
        return AppAnswer(
            payload=payload,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            session_id=result.session_id,
            latency_ms=latency_ms,
            attempts=attempts,
            provider="dashscope",
            model=result.usage.model,
            request_id=result.request_id,
            prompt_version=record.prompt_version or "",
            ledger_id=ledger_id,
        )

    def _offline_answer(
        self, app_name: str, prompt: str | dict, record: guards.CallRecord, started: float
    ) -> AppAnswer:
        payload = offline.analyse(app_name, prompt)
        text = payload["text"] if app_name == "app1_chat" else json.dumps(payload, ensure_ascii=False)
        latency_ms = _ms_since(started)
        with self.connection() as conn:
            ledger_id = guards.record_running(conn, record)
            guards.finish_call(
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

    def reject_answer(self, answer: AppAnswer, reason: str) -> None:
        """Book an answer the caller found invalid as a failed call (``guards.reject_answer``)."""
        if answer.ledger_id is not None:
            with self.connection() as conn:
                guards.reject_answer(conn, answer.ledger_id, reason)

    async def acall_app(self, app_name: str, prompt: str | dict, **kwargs: Any) -> AppAnswer:
        """``call_app`` in a worker thread, for bounded concurrency (a semaphore) inside an asset."""
        return await asyncio.to_thread(self.call_app, app_name, prompt, **kwargs)

    # --------------------------------------------------------------------------- stream_chat

    def stream_chat(
        self,
        prompt: str,
        *,
        site_id: int,
        session_id: str | None = None,
        biz_params: dict | None = None,
        target_id: str | None = None,
        trigger_type: str = "chat",
        dagster_run_id: str | None = None,
    ) -> Iterator[ChatDelta]:
        """The chat app's answer as text deltas (incremental output), keeping the session id.

        Errors before the first text are retried like ``call_app``; once text has been yielded a
        failure raises ``StreamInterrupted`` (with ``partial_text``) after what came. The
        service's ``code`` decides the class of an in-stream error, not its status. After the
        last text comes one empty delta with ``done=True`` and the call's tokens; the ledger row
        is final before it is yielded.
        """
        app_name = "app1_chat"
        started = time.monotonic()
        record = self._record(
            app_name,
            prompt,
            site_id=site_id,
            app_id=self.settings.app_id(app_name),
            target_id=target_id,
            session_id=session_id,
            dagster_run_id=dagster_run_id,
            trigger_type=trigger_type,
            streamed=True,
        )
        if self.provider == "offline":
            yield from self._offline_stream(prompt, record, started)
            return
        app_id, client = self._check_config(app_name, record)
        ledger_id, _probe = self._admit(record)

        parts: list[str] = []
        sid = session_id
        usage = Usage()
        request_id: str | None = None
        finished = False  # the ledger row is final
        tokens_in = tokens_out = 0
        try:
            for n in range(1, self.settings.max_attempts + 1):
                got_stop = False
                try:
                    for chunk in client.stream(app_name, app_id, prompt, session_id=session_id, biz_params=biz_params):
                        sid = chunk.session_id or sid
                        request_id = chunk.request_id or request_id
                        if chunk.usage.tokens_in or chunk.usage.tokens_out:
                            usage = chunk.usage  # cumulative: the latest is the total
                        got_stop = got_stop or chunk.finish_reason == "stop"
                        if chunk.text or chunk.session_id:
                            parts.append(chunk.text)
                            yield ChatDelta(chunk.text, sid)
                    if not got_stop:
                        raise AttemptError(
                            "stream ended before finish_reason 'stop'",
                            kind="transient",
                            app_name=app_name,
                            code="StreamCut",
                            request_id=request_id,
                        )
                    break
                except AttemptError as err:
                    tokens_in, tokens_out = tokens_in + usage.tokens_in, tokens_out + usage.tokens_out
                    usage = Usage()
                    said = "".join(parts)
                    if said or err.kind == "permanent" or n == self.settings.max_attempts:
                        failure = _FinalFailure(err, n, tokens_in, tokens_out)
                        self._finish_failed(app_name, ledger_id, failure, started, partial=said)
                        finished = True
                        if said:
                            raise StreamInterrupted(
                                f"stream broke after {len(said)} characters: {err.code}: {err.message}",
                                app_name=app_name,
                                code=err.code,
                                status_code=err.status_code,
                                request_id=err.request_id,
                                attempts=n,
                                partial_text=said,
                            ) from err
                        self._raise_final(failure)
                    self._sleep(self._backoff(n, err.kind))
            tokens_in += usage.tokens_in
            tokens_out += usage.tokens_out
            with self.connection() as conn:
                guards.finish_call(
                    conn,
                    ledger_id,
                    status="success",
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    latency_ms=_ms_since(started),
                    attempts=n,
                    response_text="".join(parts),
                    session_id=sid,
                    request_id=request_id,
                    model=usage.model,
                )
                guards.breaker_success(conn, app_name)
            finished = True
            yield ChatDelta("", sid, done=True, tokens_in=tokens_in, tokens_out=tokens_out, ledger_id=ledger_id)
        finally:
            if not finished:
                # The consumer stopped reading (client went away) or the process is stopping:
                # keep what was said, count nothing against the breaker.
                with self.connection() as conn:
                    guards.finish_call(
                        conn,
                        ledger_id,
                        status="failed",
                        tokens_in=tokens_in + usage.tokens_in,
                        tokens_out=tokens_out + usage.tokens_out,
                        latency_ms=_ms_since(started),
                        response_text="".join(parts),
                        session_id=sid,
                        request_id=request_id,
                        error_code="Cancelled",
                        error_message="stream closed by the consumer before the end",
                    )

    def _offline_stream(self, prompt: str, record: guards.CallRecord, started: float) -> Iterator[ChatDelta]:
        reply = offline.chat_reply(prompt)
        with self.connection() as conn:
            ledger_id = guards.record_running(conn, record)
            guards.finish_call(
                conn,
                ledger_id,
                status="success",
                latency_ms=_ms_since(started),
                attempts=1,
                response_text=reply,
                session_id=record.session_id,
                model=offline.OFFLINE_MODEL,
            )
        for i in range(0, len(reply), 8):
            yield ChatDelta(reply[i : i + 8], record.session_id)
        yield ChatDelta("", record.session_id, done=True, ledger_id=ledger_id)

    async def astream_chat(self, prompt: str, **kwargs: Any) -> AsyncIterator[ChatDelta]:
        """``stream_chat`` for asyncio (FastAPI): each blocking step runs in a worker thread.

        No queue and no second event loop: the SDK's generator is advanced with
        ``asyncio.to_thread(next, ...)``. If the consumer goes away mid-stream, the generator is
        closed in a thread once its current step ends, which records the partial answer.
        """
        gen = self.stream_chat(prompt, **kwargs)
        step_lock = threading.Lock()
        exhausted = False

        def step() -> Any:
            with step_lock:
                return next(gen, _END)

        def close() -> None:
            with step_lock:
                gen.close()

        try:
            while True:
                try:
                    item = await asyncio.to_thread(step)
                except Exception:
                    exhausted = True  # the generator raised, so it is finished
                    raise
                if item is _END:
                    exhausted = True
                    return
                yield item
        finally:
            if not exhausted:
                threading.Thread(target=close, name="zqyy-llm-stream-close", daemon=True).start()


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
