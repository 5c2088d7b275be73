"""The API's one settings object, read from the environment (and a git-ignored .env).

Field names map to environment variables case-insensitively (``run_app_timeout_s`` <-
``RUN_APP_TIMEOUT_S``). Secrets are ``SecretStr``: they never show in a repr or a log line.
"""

from functools import lru_cache

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str
    db_pool_min_size: int = Field(2, ge=1)
    db_pool_max_size: int = Field(10, ge=1)

    # A verified token is remembered this long by each API process, so a read costs one database
    # round trip, not two. A revoked token therefore keeps working for at most this long. 0: off.
    auth_cache_ttl_s: float = Field(10.0, ge=0, le=300)

    # The venue calendar: event intake stamps each event with its business date.
    venue_timezone: str = "Asia/Shanghai"
    business_day_cutoff_hours: int = Field(6, ge=0, le=23)

    # Dagster's GraphQL endpoint (the webserver started by `dagster dev` / `make demo`).
    dagster_graphql_url: str = "http://127.0.0.1:3000/graphql"
    # Where an admin's browser opens Dagster's UI (run links in run logs, trigger jobs, batches).
    # Unset: the GraphQL URL without its /graphql, right when the browser reaches the same host.
    dagster_ui_url: str | None = None
    # How long `POST /api/admin/ai/run/{app_type}` waits for its run before answering.
    run_app_timeout_s: float = Field(120.0, gt=0)
    run_app_poll_interval_s: float = Field(0.5, gt=0)

    # Chat: the Bailian chat app through the LLM layer (zqyy_assets.core.llm.service), which
    # reads its guards, budget and retry settings (ZQYY_LLM_*) from the environment itself.
    # The same variable names as the LLM layer; with no key the offline analyst answers.
    dashscope_api_key: SecretStr | None = None
    dashscope_base_url: str | None = None
    dashscope_workspace: str | None = None
    dashscope_app_id_app1_chat: str | None = None
    chat_context_messages: int = Field(20, ge=1, le=200)

    # Batch runs: how long an estimate can be confirmed, and the tokens a call is assumed to
    # cost when the ledger has no recent successful call of the app (the old service's figure).
    batch_confirm_window_s: float = Field(600.0, gt=0)
    batch_default_tokens_per_call: int = Field(2000, ge=1)

    def dagster_ui_base(self) -> str:
        base = self.dagster_ui_url or self.dagster_graphql_url.rstrip("/").removesuffix("/graphql")
        return base.rstrip("/")

    def dagster_run_url(self, run_id: str | None) -> str | None:
        return f"{self.dagster_ui_base()}/runs/{run_id}" if run_id else None


@lru_cache
def get_settings() -> Settings:
    return Settings()
