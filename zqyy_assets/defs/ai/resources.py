"""``LLMResource``: the Dagster resource the AI assets call the Bailian apps through.

Every setting of the LLM layer (``core/llm/settings.py``) is a field, so the Dagster UI shows
the configuration. The code location binds them with ``llm_resource_from_env()``: each from
``dg.EnvVar`` (the API key too, so the UI shows the variable's name, never the secret)::

    resources={"llm": llm_resource_from_env()}

A field left unset falls back to the environment when the resource is first used, then to the
setting's default: ``LLMResource(database_url=dg.EnvVar("DATABASE_URL"))`` works too.

Passing ``context`` to ``call_app`` stamps the run id on the ledger rows and adds cumulative
usage to the materialization's metadata after every call (``core/llm/usage.py``).

Errors: a permanent one raises ``dg.Failure(allow_retries=False)`` naming the code and message
(the RetryPolicy does not re-run the step); a guard refusal raises ``CircuitOpen``,
``RateLimited`` or ``BudgetExceeded`` (all ``GuardRefused``, with ``.reason``); transient
failures that outlived their attempts raise ``TransientLLMError``. See ``core/llm/service.py``
for how the retries combine with a RetryPolicy (never more than 4 requests for one answer).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any
from weakref import WeakKeyDictionary

import dagster as dg
from pydantic import Field, PrivateAttr

from zqyy_assets.core import telemetry
from zqyy_assets.core.apps import APPS
from zqyy_assets.core.llm.correction import Correction
from zqyy_assets.core.llm.errors import GuardRefused, LLMError, PermanentLLMError
from zqyy_assets.core.llm.service import AppAnswer, LLMService
from zqyy_assets.core.llm.settings import (
    MODEL_ENV,
    PROVIDER_ENV,
    LLMSettings,
    load_settings,
    per_app_env,
    per_app_from_env,
)
from zqyy_assets.core.llm.usage import UsageMeter
from zqyy_assets.core.pricing import PriceTable
from zqyy_assets.core.settings import TelemetrySettings

logger = logging.getLogger(__name__)

# The per-app settings, each app's own variable: ``ZQYY_LLM_MODEL_<APP>``, ``ZQYY_LLM_PROVIDER_<APP>``.
PER_APP_ENV = {"models": MODEL_ENV, "providers": PROVIDER_ENV}


class LLMResource(dg.ConfigurableResource):
    """The eight Bailian apps (and the chat) behind guards, retries and the call ledger.

    Every field except ``database_url`` may stay unset: it is then read from the environment
    (``ZQYY_LLM_*``, ``DASHSCOPE_*``) when the resource is first used, else its default.
    """

    database_url: str = Field(description="Postgres URL of the app database (guards and ledger).")
    provider: str | None = Field(
        None, description="'dashscope', 'openai', 'offline' or 'auto' (dashscope when a DashScope key is set)."
    )
    api_key: str | None = Field(None, description="DashScope API key; bind it as dg.EnvVar('DASHSCOPE_API_KEY').")
    base_url: str | None = Field(None, description="DashScope HTTP base URL, e.g. http://127.0.0.1:8765/api/v1.")
    workspace: str | None = Field(None, description="Bailian workspace id (X-DashScope-WorkSpace).")
    app_ids: dict[str, str] = Field(default_factory=dict, description="App name -> Bailian app id.")
    openai_base_url: str | None = Field(
        None, description="OpenAI-compatible server (provider openai), e.g. http://127.0.0.1:8000/v1."
    )
    openai_api_key: str | None = Field(None, description="Its key; bind it as dg.EnvVar('OPENAI_API_KEY').")
    model: str | None = Field(None, description="The OpenAI-compatible model of every app without its own.")
    models: dict[str, str] = Field(default_factory=dict, description="App name -> its own model (provider openai).")
    response_format: str | None = Field(
        None, description="'json_schema' (the app's answer schema) or 'json_object' (servers without schemas)."
    )
    providers: dict[str, str] = Field(
        default_factory=dict, description="App name -> its own provider ('dashscope', 'openai', 'offline')."
    )
    fallback_provider: str | None = Field(
        None, description="Answers when an app's provider is refused by its breaker or fails permanently."
    )
    daily_token_limit: int | None = Field(None, description="Tokens a day, all sites together.")
    monthly_token_limit: int | None = Field(None, description="Tokens a month, all sites together.")
    budget_reserve_tokens: int | None = Field(None, description="Tokens an in-flight call reserves.")
    budget_timezone: str | None = Field(None, description="The zone whose day and month the budget counts in.")
    daily_cost_limit_cny: float | None = Field(None, description="CNY a day, all sites together (unset: no limit).")
    monthly_cost_limit_cny: float | None = Field(None, description="CNY a month, all sites together (unset: no limit).")
    prices_file: str | None = Field(None, description="JSON file of model prices (CNY per 1,000 tokens in / out).")
    prices: dict[str, dict[str, float]] = Field(
        default_factory=dict, description="Model prices over the defaults and the file: {model: {input_per_1k, ...}}."
    )
    breaker_failure_threshold: int | None = Field(None, description="Consecutive failed calls that open a breaker.")
    breaker_cooldown_seconds: float | None = Field(None, description="How long an open breaker refuses calls.")
    rate_per_minute: float | None = Field(None, description="Sustained requests a minute, per app.")
    rate_burst: int | None = Field(None, description="Rate bucket capacity, per app.")
    rate_max_wait_seconds: float | None = Field(None, description="Wait this long for a rate token before refusing.")
    max_attempts: int | None = Field(None, description="Requests per call (at most 4 per answer in a run).")
    retry_base_delay_seconds: float | None = Field(None, description="First backoff; doubles per attempt.")
    retry_max_delay_seconds: float | None = Field(None, description="Longest backoff.")
    throttle_delay_factor: float | None = Field(None, description="Backoff multiplier after a Throttling error.")
    request_timeout_seconds: float | None = Field(None, description="Time-out of one request.")
    answer_deadline_seconds: float | None = Field(
        None, description="One answer's deadline across all its attempts (default 180 s)."
    )
    db_pool_size: int | None = Field(None, description="Connections the guards and the ledger may hold.")
    inflight_start: int | None = Field(None, description="LLM calls in flight at first, all processes together.")
    inflight_floor: int | None = Field(None, description="The in-flight cap is never cut below this.")
    inflight_ceiling: int | None = Field(None, description="The in-flight cap never grows above this.")
    inflight_decrease_factor: float | None = Field(None, description="The cap is multiplied by this on a 429.")
    inflight_max_wait_seconds: float | None = Field(None, description="Wait this long for an in-flight slot.")

    _service: LLMService | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _meters: Any = PrivateAttr(default_factory=WeakKeyDictionary)

    # ----------------------------------------------------------------------------- lifecycle

    def llm_settings(self) -> LLMSettings:
        fields = {name: getattr(self, name) for name in LLMSettings.model_fields}
        for name in ("app_ids", "prices", "models", "providers"):
            if not fields.get(name):
                fields.pop(name, None)
        return load_settings(**fields)

    @property
    def service(self) -> LLMService:
        with self._lock:
            if self._service is None:
                # Tracing (OTEL_*), read where the run's process first needs the LLM layer.
                telemetry.configure(TelemetrySettings(), service_name="zqyy-dagster")
                self._service = LLMService(self.llm_settings())
            return self._service

    @property
    def price_table(self) -> PriceTable:
        """The price table the calls are costed with (``core/pricing.py``)."""
        return self.service.prices

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self.close()
        telemetry.shutdown()  # the run's spans leave before its process ends

    def close(self) -> None:
        with self._lock:
            service, self._service = self._service, None
        if service is not None:
            service.close()

    # ------------------------------------------------------------------------------- metering

    def _meter(self, context: Any) -> UsageMeter:
        try:
            meter = self._meters.get(context)
            if meter is None:
                meter = self._meters[context] = UsageMeter()
        except TypeError:  # a context that cannot be weakly referenced: meter by identity
            if isinstance(self._meters, WeakKeyDictionary):
                self._meters = {}
            meter = self._meters.setdefault(id(context), UsageMeter())
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
                # itself must not fail for that.
                logger.debug("usage metadata not recorded: %s", exc)

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
        input_hash: str | None = None,
        correction: Correction | None = None,
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
                input_hash=input_hash,
                correction=correction,
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


# ------------------------------------------------------------------------- binding from the env


def setting_env_var(name: str) -> str:
    """The environment variable of an ``LLMSettings`` field (its alias, else ``ZQYY_LLM_<NAME>``)."""
    alias = LLMSettings.model_fields[name].validation_alias
    return alias if isinstance(alias, str) else f"{LLMSettings.model_config.get('env_prefix', '')}{name}".upper()


def llm_resource_from_env(environ: Mapping[str, str] | None = None) -> LLMResource:
    """``LLMResource`` with every setting bound from its environment variable, for the code location.

    Strings and integers are bound as ``dg.EnvVar`` / ``dg.EnvVar.int``: the UI shows the
    variable's name and the value is read when a run starts. Dagster fails a run whose
    ``EnvVar`` is unset (``dagster/_config/source.py``, ``_ensure_env_variable``) and has no
    optional form, so an optional setting is bound only when its variable is set; unset, the
    setting keeps its default. Dagster has no float source either (no ``EnvVar.float``), so
    the seconds and rates are bound as the values read here, once, when the location loads
    (a malformed one fails the load, which is when it should).
    """
    env = os.environ if environ is None else environ
    bound: dict[str, Any] = {"database_url": dg.EnvVar("DATABASE_URL")}  # required: no default
    for name, field in LLMSettings.model_fields.items():
        var = setting_env_var(name)
        if name == "database_url":
            continue
        if name == "app_ids":
            bound[name] = {app: dg.EnvVar(spec.app_id_env) for app, spec in APPS.items() if env.get(spec.app_id_env)}
        elif name in PER_APP_ENV:
            prefix = PER_APP_ENV[name]
            bound[name] = {app: dg.EnvVar(per_app_env(prefix, app)) for app in per_app_from_env(prefix, env)}
        elif not (env.get(var) or "").strip():
            continue  # unset: the default
        elif field.annotation is int:
            bound[name] = dg.EnvVar.int(var)
        elif field.annotation in (float, float | None):
            bound[name] = float(env[var])
        elif name == "prices":
            bound[name] = json.loads(env[var])  # a JSON object of prices, checked when the settings are built
        else:
            bound[name] = dg.EnvVar(var)
    return LLMResource(**bound)
