from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from api.main import create_app
from api.settings import Settings
from zqyy_assets.core import db
from zqyy_assets.core import tokens as token_store
from zqyy_assets.core.settings import DatabaseSettings

SITE, OTHER_SITE = 1, 2


@pytest.fixture
def api_settings(db_url: str) -> Settings:
    # Dagster is not running in these tests: a closed loopback port fails fast.
    # No token cache: each request sees the tokens table as the test left it.
    # No bad-token throttle: many tests send bad tokens on purpose (tests/api/test_auth_throttle.py turns it on).
    return Settings(
        database=DatabaseSettings(database_url=db_url),
        db_pool_min_size=1,
        db_pool_max_size=4,
        dagster_graphql_url="http://127.0.0.1:9/graphql",
        auth_cache_ttl_s=0,
        auth_failures_per_minute=0,
    )


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    """A fresh app on a fresh database: no shared live state between tests."""
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client


@pytest.fixture
def make_token(db_url: str) -> Callable[..., str]:
    """Issue a real token (hashed into biz.api_tokens) and return it in clear."""

    def make(
        role: token_store.Role = "staff",
        sites: tuple[int, ...] = (SITE,),
        subject: str | None = None,
        nickname: str = "",
    ) -> str:
        with db.transaction(db_url) as conn:
            return token_store.issue(
                conn,
                subject=subject or f"{role}-{'-'.join(map(str, sites))}",
                role=role,
                site_ids=list(sites),
                nickname=nickname,
            ).token

    return make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(make_token) -> dict[str, str]:
    """Headers of an admin of SITE."""
    return bearer(make_token("admin"))


@pytest.fixture
def staff(make_token) -> dict[str, str]:
    """Headers of a staff member of SITE."""
    return bearer(make_token("staff"))


# ---- rows other layers write, inserted directly so each test states its own data ----
def put_cache(
    db_url: str,
    *,
    site: int,
    app: str,
    target: str,
    result: dict,
    status: str = "valid",
    created_at: str | None = None,
    score: float | None = None,
    run_id: str | None = None,
) -> int:
    with db.transaction(db_url) as conn:
        return conn.execute(
            """INSERT INTO biz.ai_cache (site_id, cache_type, target_id, input_hash, prompt_version, result_json, score,
                                         status, triggered_by, provider, dagster_run_id, created_at)
               VALUES (%s, %s, %s, md5(random()::text), 'v1', %s, %s, %s, 'test', 'offline', %s,
                       COALESCE(%s::timestamptz, now()))
               RETURNING id""",
            (site, app, target, Jsonb(result), score, status, run_id, created_at),
        ).fetchone()["id"]


def put_alert(
    db_url: str,  # one open alert per (site, app, alert type): vary app or type for several
    *,
    site: int | None,
    app: str = "app3_clue",
    alert_type: str = "failed",
    message: str = "boom",
    created_at: str | None = None,
) -> int:
    with db.transaction(db_url) as conn:
        return conn.execute(
            """INSERT INTO biz.ai_alerts (site_id, app_type, alert_type, error_message, created_at, last_seen_at)
               VALUES (%s, %s, %s, %s, COALESCE(%s::timestamptz, now()), COALESCE(%s::timestamptz, now()))
               RETURNING id""",
            (site, app, alert_type, message, created_at, created_at),
        ).fetchone()["id"]


def put_clue(db_url: str, *, site: int, member: int, summary: str, source: str = "ai_consumption") -> int:
    with db.transaction(db_url) as conn:
        return conn.execute(
            """INSERT INTO biz.member_retention_clue (site_id, member_id, category, summary, detail, source)
               VALUES (%s, %s, '消费习惯', %s, '', %s) RETURNING id""",
            (site, member, summary, source),
        ).fetchone()["id"]


def put_call(
    db_url: str,
    *,
    site: int,
    app: str,
    status: str = "success",
    tokens_in: int = 0,
    tokens_out: int = 0,
    latency_ms: int | None = None,
    called_at: str | None = None,
    cost_cny: float = 0.0,
) -> int:
    """A finished LLM call in the ledger (what the LLM layer writes)."""
    with db.transaction(db_url) as conn:
        return conn.execute(
            """INSERT INTO biz.ai_call_ledger (site_id, app_name, provider, status, tokens_in, tokens_out, latency_ms,
                                               called_at, finished_at, cost_cny)
               VALUES (%s, %s, 'dashscope', %s, %s, %s, %s,
                       COALESCE(%s::timestamptz, now()), COALESCE(%s::timestamptz, now()), %s)
               RETURNING id""",
            (site, app, status, tokens_in, tokens_out, latency_ms, called_at, called_at, cost_cny),
        ).fetchone()["id"]


def put_memo_hit(
    db_url: str, *, site: int, app: str, tokens_in: int, tokens_out: int, cost_cny: float, hit_at: str | None = None
) -> None:
    """An answer memoization gave, with what it saved (what ``core/memo_savings.py`` writes)."""
    with db.transaction(db_url) as conn:
        conn.execute(
            """INSERT INTO biz.ai_memo_hits (site_id, app_name, target_id, trigger_type, tokens_in_avoided,
                                             tokens_out_avoided, cost_avoided_cny, hit_at)
               VALUES (%s, %s, '42', 'manual', %s, %s, %s, COALESCE(%s::timestamptz, now()))""",
            (site, app, tokens_in, tokens_out, cost_cny, hit_at),
        )
