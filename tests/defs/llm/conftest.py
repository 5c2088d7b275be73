"""Fixtures for the LLM layer: the real SDK against the fake server, on a fresh database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from zqyy_assets.defs.llm.apps import APP_NAMES
from zqyy_assets.defs.llm.service import LLMService
from zqyy_assets.defs.llm.settings import LLMSettings, load_settings
from zqyy_assets.testing.fake_dashscope import FAKE_API_KEY, FakeDashScope

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
    from zqyy_assets.lib import db

    with db.connect(db_url) as conn:
        return conn.execute("SELECT * FROM biz.ai_call_ledger ORDER BY id").fetchall()
