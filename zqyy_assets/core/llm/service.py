"""The LLM service: guards, retries, the ledger and the providers behind one call.

``LLMService`` has no Dagster dependency, so the API process uses it for the chat; the Dagster
resource (``defs/ai/resources.py``) is a thin layer over it that adds materialization metadata
and turns permanent errors into ``dg.Failure(allow_retries=False)``.

One call, in order:

0. Route (``providers.py``): the app's provider (``dashscope``, ``openai``, ``offline``) and
   model; a fallback route answers when the primary's breaker is open or it failed
   permanently for a reason other than the input (the steps below, again, for the fallback).
1. Provider ``offline``: the offline analyst answers at once (no guards, zero tokens); one
   ``success`` ledger row.
2. Configuration: a missing app id, model or API key is a permanent error (one ``failed`` row).
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
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from zqyy_assets.core.apps import prompt_version
from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.llm import ledger, offline, stream, stream_bridge
from zqyy_assets.core.llm.booking import CallBooking
from zqyy_assets.core.llm.budget import BudgetStatus
from zqyy_assets.core.llm.calls import AppAnswer, Call, answer_through
from zqyy_assets.core.llm.client import DashScopeClient
from zqyy_assets.core.llm.correction import Correction
from zqyy_assets.core.llm.errors import CircuitOpen, LLMConfigError, PermanentLLMError
from zqyy_assets.core.llm.guards import Guards, GuardSettings
from zqyy_assets.core.llm.openai_client import OpenAIChatClient
from zqyy_assets.core.llm.providers import Route, fallback_for, route_for, routes
from zqyy_assets.core.llm.retry import Backoff, Retrying
from zqyy_assets.core.llm.settings import MAX_REQUESTS_PER_ANSWER, LLMSettings
from zqyy_assets.core.llm.stream import ChatDelta

__all__ = ["AppAnswer", "LLMService"]

logger = logging.getLogger(__name__)


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
        self.openai_client: OpenAIChatClient | None = None
        if settings.openai_base_url or settings.openai_api_key_value():
            self.openai_client = OpenAIChatClient(
                api_key=settings.openai_api_key_value(),
                base_url=settings.openai_base_url,
                timeout_s=settings.request_timeout_seconds,
                response_format=settings.response_format,
            )

    # ------------------------------------------------------------------------------ plumbing

    @property
    def provider(self) -> str:
        """The provider of the apps that do not name their own (``route`` tells an app's)."""
        return self.settings.resolved_provider()

    def route(self, app_name: str) -> Route:
        """The app's route: its provider and model (``providers.py``)."""
        return route_for(self.settings, app_name)

    def routes(self) -> dict[str, Route]:
        """Every app's route, by app name (what a run's memo keys are made of)."""
        return routes(self.settings)

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
        if self.openai_client is not None:
            self.openai_client.close()

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
        route: Route | None = None,
        fallback_for: str | None = None,
    ) -> ledger.CallRecord:
        """What the ledger knows of a call through ``route`` (default: the app's own)."""
        route = route or self.route(app_name)
        return ledger.CallRecord(
            site_id=site_id,
            app_name=app_name,
            app_id=self.settings.app_id(app_name) if route.provider == "dashscope" else None,
            provider=route.provider,
            request_prompt=prompt_text,
            prompt_version=prompt_version(app_name),
            model=offline.OFFLINE_MODEL if route.provider == "offline" else route.model,
            session_id=session_id,
            dagster_run_id=dagster_run_id,
            trigger_type=trigger_type,
            target_id=target_id,
            streamed=streamed,
            fallback_for=fallback_for,
        )

    def reject_answer(self, answer: AppAnswer, reason: str) -> None:
        """Book an answer the caller found invalid as a failed call (``ledger.reject_answer``)."""
        if answer.ledger_id is not None:
            self.reject_call(answer.ledger_id, reason)

    def requests_left(self, record: ledger.CallRecord) -> int:
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
        correction: Correction | None = None,
    ) -> AppAnswer:
        """Ask one app for one answer (parsed JSON; the chat's text as ``{"text": ...}``).

        ``target_id`` names the answer (member id, ``assistant_member``, ``time_dimension__area``):
        with ``dagster_run_id`` it keys the per-answer request cap across step retries, so give it
        whenever one run asks for several answers of the same app and site. ``input_hash`` (the
        memoization key) only labels the call's span (``tracing.py``). The app's route answers,
        or the fallback route when ``providers.fallback_for`` allows (its answer says so).
        ``correction`` re-asks after an answer outside its schema (``correction.py``; with that
        answer's ``session_id``); its row's ``request_prompt`` is ``correction.standalone(prompt)``.
        """
        prompt_text = prompt if isinstance(prompt, str) else json.dumps(prompt, ensure_ascii=False, default=str)
        call = Call(
            app_name, prompt, prompt_text, site_id, target_id, session_id, biz_params, dagster_run_id, correction
        )
        primary = self.route(app_name)
        try:
            return answer_through(self, call, primary, trigger_type, input_hash)
        except (CircuitOpen, PermanentLLMError) as error:
            fallback = fallback_for(self.settings, app_name, primary, error)
            if fallback is None:
                raise
            logger.warning(
                "%s: %s failed (%s); the fallback %s answers", app_name, primary.provider, error, fallback.provider
            )
            return answer_through(self, call, fallback, trigger_type, input_hash, fallback_for=primary.provider)

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
