"""``LLMResource``: the Dagster resource the AI assets call the Bailian apps through.

Bind it with only the database from the environment; everything else is read from the
environment at run time (``settings.py``), so an unset optional variable never breaks loading::

    resources={"llm": LLMResource(database_url=dg.EnvVar("DATABASE_URL"))}

In an asset::

    answer = llm.call_app("app3_clue", prompt, site_id=site, target_id=str(member_id), context=context)
    # or, many at once: await llm.acall_app(...) under an asyncio.Semaphore

Passing ``context`` stamps the run id on the ledger rows and adds cumulative usage to the
materialization's metadata after every call, as dagster-openai does for OpenAI:
``llm.calls``, ``llm.failed_calls``, ``llm.refused_calls``, ``llm.tokens_in``,
``llm.tokens_out``, ``llm.total_tokens``, ``llm.latency_ms_avg``, ``llm.latency_ms_max``,
``llm.provider``, ``llm.model``, ``llm.prompt_versions``.

Errors: a permanent one raises ``dg.Failure(allow_retries=False)`` naming the code and message
(the RetryPolicy does not re-run the step); a guard refusal raises ``CircuitOpen``,
``RateLimited`` or ``BudgetExceeded`` (all ``GuardRefused``, with ``.reason``); transient
failures that outlived their attempts raise ``TransientLLMError``. See ``service.py`` for how
the retries combine with a RetryPolicy (never more than 4 requests for one answer).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any
from weakref import WeakKeyDictionary

import dagster as dg
from pydantic import Field, PrivateAttr

from zqyy_assets.core.llm.errors import GuardRefused, LLMError, PermanentLLMError
from zqyy_assets.core.llm.service import AppAnswer, ChatDelta, LLMService
from zqyy_assets.core.llm.settings import LLMSettings, load_settings

logger = logging.getLogger(__name__)


class _UsageMeter:
    def __init__(self) -> None:
        self.calls = self.failed = self.refused = 0
        self.tokens_in = self.tokens_out = 0
        self.latency_total = self.latency_max = 0
        self.providers: list[str] = []
        self.models: list[str] = []
        self.prompt_versions: dict[str, str] = {}

    def add_answer(self, app_name: str, answer: AppAnswer) -> None:
        self.calls += 1
        self.tokens_in += answer.tokens_in
        self.tokens_out += answer.tokens_out
        self.latency_total += answer.latency_ms
        self.latency_max = max(self.latency_max, answer.latency_ms)
        if answer.provider not in self.providers:
            self.providers.append(answer.provider)
        for model in filter(None, answer.model.split(",")):
            if model not in self.models:
                self.models.append(model)
        self.prompt_versions[app_name] = answer.prompt_version

    def metadata(self) -> dict[str, Any]:
        return {
            "llm.calls": self.calls,
            "llm.failed_calls": self.failed,
            "llm.refused_calls": self.refused,
            "llm.tokens_in": self.tokens_in,
            "llm.tokens_out": self.tokens_out,
            "llm.total_tokens": self.tokens_in + self.tokens_out,
            "llm.latency_ms_avg": round(self.latency_total / self.calls, 1) if self.calls else 0.0,
            "llm.latency_ms_max": self.latency_max,
            "llm.provider": ",".join(self.providers),
            "llm.model": ",".join(self.models),
            "llm.prompt_versions": ", ".join(f"{k}={v}" for k, v in sorted(self.prompt_versions.items())),
        }


class LLMResource(dg.ConfigurableResource):
    """The eight Bailian apps (and the chat) behind guards, retries and the call ledger.

    Every field except ``database_url`` may stay unset: it is then read from the environment
    (``ZQYY_LLM_*``, ``DASHSCOPE_*``) when the resource is first used, else its default.
    """

    database_url: str = Field(description="Postgres URL of the app database (guards and ledger).")
    provider: str | None = Field(None, description="'dashscope', 'offline' or 'auto' (dashscope when a key is set).")
    api_key: str | None = Field(None, description="DashScope API key; prefer DASHSCOPE_API_KEY in the environment.")
    base_url: str | None = Field(None, description="DashScope HTTP base URL, e.g. http://127.0.0.1:8765/api/v1.")
    workspace: str | None = Field(None, description="Bailian workspace id (X-DashScope-WorkSpace).")
    app_ids: dict[str, str] = Field(default_factory=dict, description="App name -> Bailian app id.")
    daily_token_limit: int | None = None
    monthly_token_limit: int | None = None
    budget_reserve_tokens: int | None = None
    budget_timezone: str | None = None
    breaker_failure_threshold: int | None = None
    breaker_cooldown_seconds: float | None = None
    rate_per_minute: float | None = None
    rate_burst: int | None = None
    rate_max_wait_seconds: float | None = None
    max_attempts: int | None = None
    retry_base_delay_seconds: float | None = None
    retry_max_delay_seconds: float | None = None
    throttle_delay_factor: float | None = None
    request_timeout_seconds: float | None = None

    _service: LLMService | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _meters: Any = PrivateAttr(default_factory=WeakKeyDictionary)

    # ----------------------------------------------------------------------------- lifecycle

    def llm_settings(self) -> LLMSettings:
        fields = {name: getattr(self, name) for name in LLMSettings.model_fields if hasattr(self, name)}
        if not fields.get("app_ids"):
            fields.pop("app_ids", None)
        return load_settings(**fields)

    @property
    def service(self) -> LLMService:
        with self._lock:
            if self._service is None:
                self._service = LLMService(self.llm_settings())
            return self._service

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            service, self._service = self._service, None
        if service is not None:
            service.close()

    # ------------------------------------------------------------------------------- metering

    def _meter(self, context: Any) -> _UsageMeter:
        try:
            meter = self._meters.get(context)
            if meter is None:
                meter = self._meters[context] = _UsageMeter()
        except TypeError:  # a context that cannot be weakly referenced: meter by identity
            if isinstance(self._meters, WeakKeyDictionary):
                self._meters = {}
            meter = self._meters.setdefault(id(context), _UsageMeter())
        return meter

    def _record_usage(
        self,
        context: Any,
        output_name: str | None,
        app_name: str,
        answer: AppAnswer | None,
        error: BaseException | None = None,
    ) -> None:
        if context is None:
            return
        with self._lock:  # calls finish on worker threads; keep the cumulative numbers monotonic
            meter = self._meter(context)
            if answer is not None:
                meter.add_answer(app_name, answer)
            elif isinstance(error, GuardRefused):
                meter.refused += 1
            else:
                meter.failed += 1
            try:
                context.add_output_metadata(meter.metadata(), output_name=output_name)
            except dg.DagsterError as exc:
                # A directly invoked asset (unit test) has no output to carry metadata; the call
                # itself must not fail for that. The meter still answers usage_metadata().
                logger.debug("usage metadata not recorded: %s", exc)

    def usage_metadata(self, context: Any) -> dict[str, Any]:
        """The cumulative usage recorded for this context so far (what is on its metadata)."""
        with self._lock:
            return self._meter(context).metadata()

    # ---------------------------------------------------------------------------------- calls

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
        context: dg.AssetExecutionContext | dg.OpExecutionContext | None = None,
        output_name: str | None = None,
    ) -> AppAnswer:
        run_id = dagster_run_id or _run_id(context)
        try:
            answer = self.service.call_app(
                app_name,
                prompt,
                site_id=site_id,
                target_id=target_id,
                session_id=session_id,
                biz_params=biz_params,
                dagster_run_id=run_id,
                trigger_type=trigger_type,
            )
        except LLMError as err:
            self._record_usage(context, output_name, app_name, None, err)
            if isinstance(err, PermanentLLMError):
                raise _failure(err) from err
            raise
        self._record_usage(context, output_name, app_name, answer)
        return answer

    def reject_answer(self, answer: AppAnswer, reason: str) -> None:
        """The answer did not fit the app's schema: its ledger row becomes a failed call."""
        self.service.reject_answer(answer, reason)

    async def acall_app(self, app_name: str, prompt: str | dict, **kwargs: Any) -> AppAnswer:
        """``call_app`` in a worker thread, for bounded concurrency (a semaphore) inside an asset."""
        return await asyncio.to_thread(self.call_app, app_name, prompt, **kwargs)

    def stream_chat(
        self, prompt: str, *, site_id: int, session_id: str | None = None, **kwargs: Any
    ) -> Iterator[ChatDelta]:
        """The chat's answer as ``ChatDelta(text, session_id)`` deltas; see ``LLMService.stream_chat``."""
        try:
            yield from self.service.stream_chat(prompt, site_id=site_id, session_id=session_id, **kwargs)
        except PermanentLLMError as err:
            raise _failure(err) from err

    async def astream_chat(
        self, prompt: str, *, site_id: int, session_id: str | None = None, **kwargs: Any
    ) -> AsyncIterator[ChatDelta]:
        """``stream_chat`` for FastAPI: the SDK's blocking generator advanced in worker threads."""
        try:
            async for delta in self.service.astream_chat(prompt, site_id=site_id, session_id=session_id, **kwargs):
                yield delta
        except PermanentLLMError as err:
            raise _failure(err) from err


def _run_id(context: Any) -> str | None:
    run = getattr(context, "run", None) if context is not None else None
    return getattr(run, "run_id", None)


def _failure(err: PermanentLLMError) -> dg.Failure:
    return dg.Failure(
        description=f"{err.app_name} failed permanently, no retry: {err.code}: {err.message}",
        metadata={
            "app_name": err.app_name or "",
            "error_code": err.code or "",
            "error_message": err.message,
            "request_id": err.request_id or "",
            "attempts": err.attempts,
        },
        allow_retries=False,
    )
