"""The API's one settings object: its own fields plus the shared models it is composed of.

The shared models are the project's: :class:`DatabaseSettings` and :class:`VenueSettings`
(``zqyy_assets.core.settings``) and the LLM layer's :class:`LLMSettings`; each keeps its own
environment variable names (``.env.example``). The API-only fields map to environment variables
case-insensitively (``run_app_timeout_s`` <- ``RUN_APP_TIMEOUT_S``). Everything is read once, in
:func:`get_settings`, from the environment and a git-ignored ``.env``. Secrets are
``SecretStr``: they never show in a repr or a log line.
"""

from __future__ import annotations

import os
from functools import lru_cache

from dotenv import dotenv_values
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from zqyy_assets.core.llm.settings import LLMSettings, app_ids_from_env
from zqyy_assets.core.settings import (
    DatabaseSettings,
    RealtimeSettings,
    TelemetrySettings,
    VenueSettings,
    blank_is_unset,
)
from zqyy_assets.core.tokens import Role

ENV_FILE = ".env"


def _names(value: str) -> frozenset[str]:
    return frozenset(v.strip() for v in value.split(",") if v.strip())


class LoginTokenSettings(BaseSettings):
    """The platform's own login tokens (JWTs its auth service issues), accepted next to the
    project's opaque tokens. ``ZQYY_AUTH_*``; neither a secret nor a JWKS URL: JWTs are refused.

    HS256 with the shared secret, RS256 / ES256 with the public keys of the JWKS URL. Issuer and
    audience are checked when set; ``exp`` is required and honoured (with ``jwt_leeway_s`` of
    clock skew). Each claim's name is a setting; an empty status claim name turns the approval
    check off."""

    model_config = SettingsConfigDict(env_prefix="ZQYY_AUTH_", extra="ignore")

    jwt_secret: SecretStr | None = None
    jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None  # comma-separated: any one of them
    jwt_leeway_s: float = Field(30.0, ge=0, le=600)
    # The JWKS is kept this long; a token whose key id is not in it fetches it again, at most
    # once per cooldown (so tokens with made-up key ids cannot hammer the auth service).
    jwks_lifespan_s: float = Field(300.0, gt=0)
    jwks_cooldown_s: float = Field(10.0, ge=0)
    jwks_timeout_s: float = Field(5.0, gt=0, le=60)

    claim_user_id: str = "sub"
    claim_site_id: str = "site_id"
    claim_site_ids: str = "site_ids"
    claim_role: str = "role"
    claim_nickname: str = "nickname"
    claim_status: str = "status"
    approved_status: str = "approved"
    # The platform's role values that map to this API's two roles (comma-separated); any other: 403.
    admin_roles: str = "admin"
    staff_roles: str = "staff"

    _blank = field_validator("jwt_secret", "jwks_url", "jwt_issuer", "jwt_audience", mode="before")(blank_is_unset)

    @field_validator("jwks_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("ZQYY_AUTH_JWKS_URL must be an http(s) URL")
        return value

    @property
    def enabled(self) -> bool:
        return self.jwt_secret is not None or self.jwks_url is not None

    @property
    def audiences(self) -> list[str]:
        return sorted(_names(self.jwt_audience or ""))

    def role_of(self, value: object) -> Role | None:
        """``admin`` / ``staff`` for a platform role value, None for any other."""
        if not isinstance(value, str):
            return None
        if value in _names(self.admin_roles):
            return "admin"
        return "staff" if value in _names(self.staff_roles) else None


class Settings(BaseSettings):
    # The composed models are given by get_settings (or a test), never parsed from a variable.
    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore")

    # DATABASE_URL: required by the API (it never starts the embedded server itself).
    database: DatabaseSettings
    # VENUE_TIMEZONE, BUSINESS_DAY_CUTOFF_HOURS: event intake stamps each event with its business date.
    venue: VenueSettings = Field(default_factory=lambda: VenueSettings())
    # The chat's Bailian app through the LLM layer (DASHSCOPE_*, ZQYY_LLM_*): the same guards,
    # budget and ledger as the pipeline; with no key the offline analyst answers.
    llm: LLMSettings = Field(default_factory=lambda: LLMSettings())
    # REALTIME_*: the WebSocket channels' replay window, purge interval and per-client bound.
    realtime: RealtimeSettings = Field(default_factory=lambda: RealtimeSettings())
    # ZQYY_AUTH_*: the platform's login tokens (JWTs).
    login: LoginTokenSettings = Field(default_factory=lambda: LoginTokenSettings())
    # OTEL_*: traces of the requests and the LLM calls (off unless an OTLP endpoint is set).
    telemetry: TelemetrySettings = Field(default_factory=lambda: TelemetrySettings())

    db_pool_min_size: int = Field(2, ge=1)
    db_pool_max_size: int = Field(10, ge=1)
    # How long a request waits for a pooled connection before answering 503 (the database is away
    # or every connection is busy); psycopg_pool's own default is 30 s.
    db_pool_timeout_s: float = Field(5.0, gt=0, le=60)

    # A verified token is remembered this long by each API process, so a read costs one database
    # round trip, not two. A revoked token therefore keeps working for at most this long. 0: off.
    # A login JWT is remembered as long, never past its expiry.
    auth_cache_ttl_s: float = Field(10.0, ge=0, le=300)
    # Refused bearer tokens one client (its address) may send in a minute, counted over every worker
    # and API process in Postgres: past it, 429 with Retry-After until the minute is over, whatever
    # the token (api/auth_throttle.py). 0: off. Each worker reads the blocked clients this often.
    auth_failures_per_minute: int = Field(20, ge=0)
    auth_throttle_refresh_s: float = Field(1.0, gt=0, le=60)

    # Dagster's GraphQL endpoint (the webserver started by `dagster dev` / `make demo`).
    dagster_graphql_url: str = "http://127.0.0.1:3000/graphql"
    # Where an admin's browser opens Dagster's UI (run links in run logs, trigger jobs, batches).
    # Unset: the GraphQL URL without its /graphql, right when the browser reaches the same host.
    dagster_ui_url: str | None = None
    # How long `POST /api/admin/ai/run/{app_type}` waits for its run before answering.
    run_app_timeout_s: float = Field(120.0, gt=0)
    run_app_poll_interval_s: float = Field(0.5, gt=0)

    # Browser origins allowed (comma-separated, e.g. `https://admin.example.com`), the one allowlist:
    # CORS for HTTP (preflights answered, `Authorization` allowed; empty: no CORS header at all,
    # so a browser on another origin is refused) and the WebSocket `Origin` check (empty: none).
    api_cors_origins: str = ""

    chat_context_messages: int = Field(20, ge=1, le=200)
    # While the model is silent the chat stream sends an SSE comment this often: the mini-program's
    # client (and proxies) drop a connection that stays idle.
    chat_sse_ping_s: float = Field(10.0, gt=0, le=300)

    # Prometheus metrics (README "Metrics and SSE"). `/metrics` on the API needs an admin token;
    # METRICS_PORT also serves them without a token on a port of their own (for a scraper inside
    # the cluster), from one worker: the first that binds it. METRICS_ENABLED=false: no request
    # metrics and no /metrics (the benchmark's baseline).
    metrics_enabled: bool = True
    metrics_port: int | None = Field(None, ge=1, le=65535)
    metrics_host: str = "0.0.0.0"
    # Several API workers: an empty directory shared by them (wiped before the API starts), in the
    # process environment itself (prometheus_client reads it when imported); each worker writes its
    # request histograms and WebSocket gauges there and a scrape of any worker adds them up.
    prometheus_multiproc_dir: str | None = None

    # Batch runs: how long an estimate can be confirmed, and the tokens a call is assumed to
    # cost when the ledger has no recent successful call of the app (the old service's figure).
    batch_confirm_window_s: float = Field(600.0, gt=0)
    batch_default_tokens_per_call: int = Field(2000, ge=1)

    _blank = field_validator("metrics_port", "prometheus_multiproc_dir", mode="before")(blank_is_unset)

    @model_validator(mode="after")
    def _one_database(self) -> Settings:
        if not self.database.database_url:
            raise ValueError("DATABASE_URL must be set: the API serves an existing database")
        # The LLM layer's guards and ledger live in the API's database (both read DATABASE_URL).
        if self.llm.database_url is None:
            self.llm = self.llm.model_copy(update={"database_url": self.database.database_url})
        return self

    @property
    def database_url(self) -> str:
        assert self.database.database_url is not None  # checked when built
        return self.database.database_url

    @property
    def cors_origins(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/") for o in self.api_cors_origins.split(",") if o.strip())

    def dagster_ui_base(self) -> str:
        base = self.dagster_ui_url or self.dagster_graphql_url.rstrip("/").removesuffix("/graphql")
        return base.rstrip("/")

    def dagster_run_url(self, run_id: str | None) -> str | None:
        return f"{self.dagster_ui_base()}/runs/{run_id}" if run_id else None


@lru_cache
def get_settings() -> Settings:
    """The served app's settings, read once: the environment, then ``.env``."""
    # The app ids are one variable per app (DASHSCOPE_APP_ID_<NAME>), not fields: read them from
    # `.env` as well as the environment, the environment winning, as for every other field.
    app_ids = app_ids_from_env({**{k: v or "" for k, v in dotenv_values(ENV_FILE).items()}, **os.environ})
    return Settings(
        database=DatabaseSettings(_env_file=ENV_FILE),
        venue=VenueSettings(_env_file=ENV_FILE),
        llm=LLMSettings(_env_file=ENV_FILE, app_ids=app_ids),
        realtime=RealtimeSettings(_env_file=ENV_FILE),
        login=LoginTokenSettings(_env_file=ENV_FILE),
        telemetry=TelemetrySettings(_env_file=ENV_FILE),
    )
