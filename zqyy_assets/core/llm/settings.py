"""The LLM layer's settings, read from the environment once (names in ``.env.example``).

Values passed explicitly (by ``LLMResource`` fields or by a caller) win over the environment;
anything left unset falls back to the environment, then to the defaults below. The API key is
a ``SecretStr``: it never appears in a repr, a log line or the Dagster UI. Each app's Bailian
app id is its own variable, ``DASHSCOPE_APP_ID_<NAME>``, read into ``app_ids`` when the
settings are built, so nothing reads the environment at call time; so are each app's provider
(``ZQYY_LLM_PROVIDER_<NAME>``, into ``providers``) and model (``ZQYY_LLM_MODEL_<NAME>``, into
``models``).

Providers: ``dashscope`` (a Bailian app by its app id), ``openai`` (any OpenAI-compatible chat
completions server: ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``, the model ``ZQYY_LLM_MODEL`` or the
app's own), ``offline`` (the deterministic analyst). ``auto`` is dashscope when
``DASHSCOPE_API_KEY`` is set, else offline. How an app's route and fallback are chosen:
``providers.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from zqyy_assets.core.apps import APPS
from zqyy_assets.core.pricing import PriceTable, parse_prices
from zqyy_assets.core.settings import blank_is_unset

# One answer may cost at most this many HTTP requests, whatever the retry settings and the
# asset's RetryPolicy. How the two combine:
#
# Each answer gets at most ``MAX_REQUESTS_PER_ANSWER`` (4) requests in one Dagster run. With the
# defaults (``max_attempts=3``), a transient failure surviving three attempts raises
# ``TransientLLMError``; a ``RetryPolicy`` re-runs the step, and the re-run's call for the same
# answer is allowed ``4 - 3 = 1`` more request; after that the call fails with a permanent
# ``RequestCapReached`` and no request. The recommended pairing is ``max_attempts=2`` with
# ``RetryPolicy(max_retries=1, delay=30, backoff=EXPONENTIAL, jitter=PLUS_MINUS)``: two quick
# tries, then one later step retry with two more, four in all. Permanent errors never reach the
# RetryPolicy (``Failure(allow_retries=False)``). Outside a run (the API), ``max_attempts``
# (at most 4) is the cap. Guard refusals send nothing and are not counted. An answer outside its
# schema is asked again (``core/answering.py``) and the ledger books it failed, so its requests
# count against the same cap.
MAX_REQUESTS_PER_ANSWER = 4

Provider = Literal["auto", "dashscope", "openai", "offline"]
ProviderName = Literal["dashscope", "openai", "offline"]
PROVIDER_NAMES: tuple[str, ...] = ProviderName.__args__  # type: ignore[attr-defined]
ResponseFormat = Literal["json_schema", "json_object"]


def app_ids_from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every app id set in the environment (``DASHSCOPE_APP_ID_<NAME>``), by app name."""
    env = os.environ if environ is None else environ
    return {name: value for name, spec in APPS.items() if (value := env.get(spec.app_id_env, "").strip())}


def per_app_env(prefix: str, app_name: str) -> str:
    """An app's own variable of a setting, e.g. ``ZQYY_LLM_MODEL_APP2_FINANCE``."""
    return f"{prefix}_{app_name.upper()}"


def per_app_from_env(prefix: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every app's own value of a setting set in the environment (``<prefix>_<NAME>``), by app name."""
    env = os.environ if environ is None else environ
    return {name: value for name in APPS if (value := env.get(per_app_env(prefix, name), "").strip())}


MODEL_ENV = "ZQYY_LLM_MODEL"
PROVIDER_ENV = "ZQYY_LLM_PROVIDER"


class LLMSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZQYY_LLM_", extra="ignore", populate_by_name=True)

    # "auto": dashscope when an API key is set, else the offline analyst.
    provider: Provider = "auto"
    api_key: SecretStr | None = Field(None, validation_alias="DASHSCOPE_API_KEY")
    base_url: str | None = Field(None, validation_alias="DASHSCOPE_BASE_URL")
    workspace: str | None = Field(None, validation_alias="DASHSCOPE_WORKSPACE")
    database_url: str | None = Field(None, validation_alias="DATABASE_URL")
    # app name -> Bailian app id; names not given are filled from DASHSCOPE_APP_ID_<NAME>.
    app_ids: dict[str, str] = Field(default_factory=dict)

    # OpenAI-compatible provider: the server, its key (a local server may need none), the model
    # of every app unless the app names its own (ZQYY_LLM_MODEL_<NAME>), and how the answer's
    # JSON is asked for: the app's schema (json_schema), or any JSON object for servers without
    # structured output (json_object).
    openai_base_url: str | None = Field(None, validation_alias="OPENAI_BASE_URL")
    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY", repr=False)
    model: str | None = None
    models: dict[str, str] = Field(default_factory=dict)
    response_format: ResponseFormat = "json_schema"
    # app name -> its provider (ZQYY_LLM_PROVIDER_<NAME>), over ``provider``.
    providers: dict[str, ProviderName] = Field(default_factory=dict)
    # Answers when the app's provider is refused by its open breaker or fails permanently for a
    # reason other than the input (providers.py); unset: no fallback.
    fallback_provider: ProviderName | None = None

    daily_token_limit: int = Field(100_000, ge=0)
    monthly_token_limit: int = Field(2_000_000, ge=0)
    budget_reserve_tokens: int = Field(2_000, ge=0)
    budget_timezone: str = "Asia/Shanghai"
    # The same budget in CNY (``core/pricing.py`` prices each call); unset: no CNY limit. A call
    # is refused once either limit, tokens or CNY, is spent.
    daily_cost_limit_cny: float | None = Field(None, ge=0)
    monthly_cost_limit_cny: float | None = Field(None, ge=0)
    # Prices per model over the defaults: a JSON file, then JSON in ZQYY_LLM_PRICES (wins), each
    # {"qwen-plus": {"input_per_1k": 0.0008, "output_per_1k": 0.002}}.
    prices_file: Path | None = None
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)

    breaker_failure_threshold: int = Field(5, ge=1)
    breaker_cooldown_seconds: float = Field(60.0, ge=0)

    rate_per_minute: float = Field(60.0, gt=0)
    rate_burst: int = Field(10, ge=1)
    rate_max_wait_seconds: float = Field(10.0, ge=0)

    max_attempts: int = Field(3, ge=1, le=MAX_REQUESTS_PER_ANSWER)
    retry_base_delay_seconds: float = Field(1.0, ge=0)
    retry_max_delay_seconds: float = Field(20.0, ge=0)
    throttle_delay_factor: float = Field(4.0, ge=1)
    request_timeout_seconds: float = Field(180.0, gt=0)
    # One answer's deadline across all its attempts and backoffs (the seed's step timeout): no
    # attempt starts past it and each request's own timeout is cut to what is left. A call that
    # runs out of time is ledgered `timeout` and raises an alert.
    answer_deadline_seconds: float = Field(180.0, gt=0)

    db_pool_size: int = Field(8, ge=1)

    # One cap on calls in flight across every process (``inflight.py``), adapting to the provider
    # (AIMD): it starts at ``inflight_start`` the first time, is cut to ``cap * decrease_factor``
    # on a throttling answer and grows back on successes, between floor and ceiling. A call
    # waiting longer than ``inflight_max_wait_seconds`` for a slot is refused (``rate_limited``).
    inflight_start: int = 8
    inflight_floor: int = 1
    inflight_ceiling: int = 64
    inflight_decrease_factor: float = Field(0.9, gt=0, lt=1)
    inflight_max_wait_seconds: float = Field(120.0, gt=0)

    _blank = field_validator(
        "api_key",
        "base_url",
        "workspace",
        "database_url",
        "daily_cost_limit_cny",
        "monthly_cost_limit_cny",
        "prices_file",
        "openai_base_url",
        "openai_api_key",
        "model",
        "fallback_provider",
        mode="before",
    )(blank_is_unset)

    @field_validator("prices")
    @classmethod
    def _valid_prices(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        parse_prices(value)  # a bad entry fails where the settings are read, naming it
        return value

    @field_validator("prices_file")
    @classmethod
    def _readable_prices(cls, value: Path | None) -> Path | None:
        if value is not None:
            PriceTable.load(value)  # read and checked once, where the process starts
        return value

    @field_validator("models", "providers", mode="before")
    @classmethod
    def _known_apps(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(APPS))
            if unknown:
                raise ValueError(f"unknown app(s) {', '.join(unknown)}; known: {', '.join(APPS)}")
        return value

    @field_validator("inflight_start", "inflight_floor", "inflight_ceiling")
    @classmethod
    def _positive_slots(cls, value: int, info: ValidationInfo) -> int:
        if value <= 0:
            raise ValueError(f"ZQYY_LLM_{(info.field_name or '').upper()} must be at least 1, got {value}")
        return value

    @model_validator(mode="after")
    def _inflight_order(self) -> LLMSettings:
        if not self.inflight_floor <= self.inflight_ceiling:
            raise ValueError(
                f"ZQYY_LLM_INFLIGHT_FLOOR ({self.inflight_floor}) must not exceed "
                f"ZQYY_LLM_INFLIGHT_CEILING ({self.inflight_ceiling})"
            )
        return self

    @model_validator(mode="after")
    def _per_app_from_env(self) -> LLMSettings:
        given = {name: app_id for name, app_id in self.app_ids.items() if app_id}
        self.app_ids = {**app_ids_from_env(), **given}
        self.models = {**per_app_from_env(MODEL_ENV), **{k: v for k, v in self.models.items() if v}}
        from_env = per_app_from_env(PROVIDER_ENV)
        bad = {k: v for k, v in from_env.items() if v not in PROVIDER_NAMES}
        if bad:
            raise ValueError(
                f"{', '.join(per_app_env(PROVIDER_ENV, k) + '=' + v for k, v in bad.items())}: "
                f"a provider is one of {', '.join(PROVIDER_NAMES)}"
            )
        self.providers = {**from_env, **{k: v for k, v in self.providers.items() if v}}  # type: ignore[dict-item]
        return self

    def resolved_provider(self) -> ProviderName:
        """The provider of every app that does not name its own."""
        if self.provider == "auto":
            return "dashscope" if self.api_key_value() else "offline"
        return self.provider

    def provider_for(self, app_name: str) -> ProviderName:
        return self.providers.get(app_name) or self.resolved_provider()

    def model_for(self, app_name: str) -> str | None:
        """The OpenAI-compatible model the app asks (its own, else ``ZQYY_LLM_MODEL``)."""
        return self.models.get(app_name) or self.model

    def api_key_value(self) -> str | None:
        return self.api_key.get_secret_value() if self.api_key else None

    def openai_api_key_value(self) -> str | None:
        return self.openai_api_key.get_secret_value() if self.openai_api_key else None

    def app_id(self, app_name: str) -> str | None:
        return self.app_ids.get(app_name)

    def price_table(self) -> PriceTable:
        """The default prices, the file's over them, the variable's over those."""
        return PriceTable.load(self.prices_file, self.prices)


def load_settings(**overrides: Any) -> LLMSettings:
    """Settings from the environment, with the given non-None values taking precedence."""
    return LLMSettings(**{k: v for k, v in overrides.items() if v is not None})
