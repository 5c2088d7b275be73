"""Fixtures for the LLM layer: the real SDK against the fake server, on a real database.

``db_url`` here is one migrated database for the whole session whose LLM tables are emptied
before each test: the same clean state as a fresh database per test, without paying for a
CREATE/DROP DATABASE per test (the LLM tests are many and short).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.databases import cloned_database
from zqyy_assets.core import db
from zqyy_assets.core.apps import APP_NAMES
from zqyy_assets.core.llm.service import LLMService
from zqyy_assets.core.llm.settings import LLMSettings, load_settings
from zqyy_assets.testing.fake_dashscope import FAKE_API_KEY, FakeDashScope
from zqyy_assets.testing.fake_openai import FakeOpenAI

FAST = {
    "provider": "dashscope",
    "api_key": FAKE_API_KEY,
    "app_ids": {name: f"fake-{name}" for name in APP_NAMES},
    "retry_base_delay_seconds": 0.01,
    "retry_max_delay_seconds": 0.05,
    "request_timeout_seconds": 5.0,
    "rate_per_minute": 60_000.0,
    "rate_burst": 1_000,
    "breaker_failure_threshold": 100,
}


@pytest.fixture(scope="session")
def llm_database(pg_server_url: str, template_db: str) -> Iterator[str]:
    with cloned_database(pg_server_url, template_db, prefix="zqyy_llm") as url:
        yield url


@pytest.fixture
def db_url(llm_database: str) -> str:
    with db.connect(llm_database, autocommit=True) as conn:
        conn.execute(
            "TRUNCATE biz.ai_call_ledger, biz.ai_circuit_breaker, biz.ai_rate_bucket, biz.ai_alerts, biz.ai_alert_runs,"
            " biz.realtime_outbox, biz.realtime_seq, biz.ai_inflight_cap, biz.ai_inflight_lease,"
            " biz.ai_inflight_waiter, biz.ai_budget_bucket RESTART IDENTITY CASCADE"
        )
    return llm_database


@pytest.fixture
def fake() -> Iterator[FakeDashScope]:
    with FakeDashScope() as server:
        yield server


@pytest.fixture
def llm_settings(db_url: str, fake: FakeDashScope) -> Callable[..., LLMSettings]:
    def make(**overrides: Any) -> LLMSettings:
        return load_settings(**{**FAST, "base_url": fake.base_url, "database_url": db_url, **overrides})

    return make


@pytest.fixture
def make_service(llm_settings: Callable[..., LLMSettings]) -> Iterator[Callable[..., LLMService]]:
    services: list[LLMService] = []

    def make(*, sleep: Callable[[float], None] | None = None, **overrides: Any) -> LLMService:
        kwargs = {"sleep": sleep} if sleep is not None else {}
        service = LLMService(llm_settings(**overrides), **kwargs)
        services.append(service)
        return service

    yield make
    for service in services:
        service.close()


def ledger(db_url: str) -> list[dict]:
    with db.connect(db_url) as conn:
        return conn.execute("SELECT * FROM biz.ai_call_ledger ORDER BY id").fetchall()


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def make_openai(make_service, openai_fake) -> Callable[..., LLMService]:
    def make(**overrides: Any) -> LLMService:
        settings = {
            "provider": "openai",
            "openai_base_url": openai_fake.base_url,
            "openai_api_key": "k",
            "model": "qwen-plus",
            **overrides,
        }
        return make_service(**settings)

    return make
