"""Per-app routing and the fallback provider: the real SDKs against both fakes, on a real database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.core.llm.conftest import ledger
from zqyy_assets.core import answering, db
from zqyy_assets.core.answer_schemas import validate_answer
from zqyy_assets.core.llm.errors import CircuitOpen, PermanentLLMError, TransientLLMError
from zqyy_assets.core.llm.providers import Route
from zqyy_assets.core.llm.service import LLMService
from zqyy_assets.core.llm.settings import load_settings
from zqyy_assets.core.llm.usage import UsageMeter
from zqyy_assets.testing.fake_openai import FakeOpenAI

CLUE_PROMPT = {"member": {"member_id": 42, "recency_days": 3, "visits_30d": 5}}


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def make_routed(make_service, openai_fake) -> Callable[..., LLMService]:
    """DashScope (the fake) by default; the OpenAI-compatible fake configured for apps that name it."""

    def make(**overrides: Any) -> LLMService:
        return make_service(openai_base_url=openai_fake.base_url, model="qwen-plus", **overrides)

    return make


def breaker_state(db_url: str, app: str) -> str | None:
    with db.connect(db_url) as conn:
        row = conn.execute("SELECT state FROM biz.ai_circuit_breaker WHERE app_name = %s", (app,)).fetchone()
    return row["state"] if row else None


def test_each_app_goes_to_its_own_provider(make_routed, fake, openai_fake, db_url):
    service = make_routed(providers={"app1_chat": "openai", "app6_note": "offline"})

    finance = service.call_app("app3_clue", CLUE_PROMPT, site_id=1)
    note = service.call_app("app6_note", {"note_content": "喜欢斯诺克"}, site_id=1)
    chat = list(service.stream_chat("你好", site_id=1))

    assert (finance.provider, note.provider) == ("dashscope", "offline")
    assert fake.count() == 1 and fake.count("app3_clue") == 1
    assert openai_fake.count() == 1 and openai_fake.count("app1_chat") == 1 and chat[-1].done
    assert [(r["app_name"], r["provider"]) for r in ledger(db_url)] == [
        ("app3_clue", "dashscope"),
        ("app6_note", "offline"),
        ("app1_chat", "openai"),
    ]
    assert service.route("app1_chat") == Route("openai", "qwen-plus") and service.route("app3_clue") == Route(
        "dashscope"
    )


def test_per_app_providers_and_models_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("ZQYY_LLM_PROVIDER_APP1_CHAT", "openai")
    monkeypatch.setenv("ZQYY_LLM_MODEL_APP1_CHAT", "qwen3-8b")
    monkeypatch.setenv("ZQYY_LLM_FALLBACK_PROVIDER", "offline")
    settings = load_settings(provider="dashscope", model="qwen-plus")
    assert (settings.provider_for("app1_chat"), settings.model_for("app1_chat")) == ("openai", "qwen3-8b")
    assert (settings.provider_for("app3_clue"), settings.model_for("app3_clue")) == ("dashscope", "qwen-plus")
    assert settings.fallback_provider == "offline"
    monkeypatch.setenv("ZQYY_LLM_PROVIDER_APP3_CLUE", "bailian")
    with pytest.raises(ValueError, match="ZQYY_LLM_PROVIDER_APP3_CLUE=bailian"):
        load_settings()


def test_a_permanent_failure_not_about_the_input_falls_back_and_the_answer_is_labelled(
    make_routed, openai_fake, db_url
):
    openai_fake.script("app3_clue", ["401"])
    service = make_routed(provider="openai", fallback_provider="offline")

    answer = service.call_app("app3_clue", CLUE_PROMPT, site_id=1, target_id="42", dagster_run_id="run-f")

    validate_answer("app3_clue", answer.payload)
    assert (answer.provider, answer.fallback_for, answer.payload["_provider"]) == ("offline", "openai", "offline")
    primary, fallback = ledger(db_url)
    assert (primary["provider"], primary["status"], primary["error_code"]) == ("openai", "failed", "invalid_api_key")
    assert (fallback["provider"], fallback["status"], fallback["fallback_for"]) == ("offline", "success", "openai")
    assert fallback["id"] == answer.ledger_id and fallback["target_id"] == "42"
    meter = UsageMeter()
    meter.add_answer("app3_clue", answer)
    assert meter.metadata()["llm.fallback_answers"] == 1 and meter.metadata()["llm.provider"] == "offline"


def test_content_refused_by_inspection_never_falls_back(make_routed, openai_fake, db_url):
    openai_fake.script("app3_clue", ["data_inspection"])
    with pytest.raises(PermanentLLMError) as caught:
        make_routed(provider="openai", fallback_provider="offline").call_app("app3_clue", CLUE_PROMPT, site_id=1)
    assert caught.value.code == "data_inspection_failed"
    assert [r["provider"] for r in ledger(db_url)] == ["openai"]


def test_an_open_breaker_hands_the_app_to_the_fallback_which_leaves_the_breaker_alone(
    make_routed, fake, openai_fake, db_url
):
    # DashScope is the primary; one failed call opens its breaker; the fallback is the OpenAI-compatible server.
    fake.script("app3_clue", ["500"])
    service = make_routed(provider="dashscope", fallback_provider="openai", max_attempts=1, breaker_failure_threshold=1)

    with pytest.raises(TransientLLMError):  # a transient failure is the breaker's to count, not a fallback
        service.call_app("app3_clue", CLUE_PROMPT, site_id=1)
    assert breaker_state(db_url, "app3_clue") == "open" and openai_fake.count() == 0

    answer = service.call_app("app3_clue", CLUE_PROMPT, site_id=1)

    assert (answer.provider, answer.model, answer.fallback_for) == ("openai", "qwen-plus", "dashscope")
    assert answer.payload["_provider"] == "openai" and fake.count() == 1 and openai_fake.count() == 1
    assert [(r["provider"], r["status"]) for r in ledger(db_url)] == [
        ("dashscope", "failed"),
        ("dashscope", "circuit_open"),
        ("openai", "success"),
    ]
    assert breaker_state(db_url, "app3_clue") == "open"  # the fallback's success did not close the primary's


def test_without_a_fallback_the_refusal_stands(make_routed, fake, db_url):
    fake.script("app3_clue", ["500"])
    service = make_routed(provider="dashscope", max_attempts=1, breaker_failure_threshold=1)
    with pytest.raises(TransientLLMError):
        service.call_app("app3_clue", CLUE_PROMPT, site_id=1)
    with pytest.raises(CircuitOpen):
        service.call_app("app3_clue", CLUE_PROMPT, site_id=1)


def test_the_chat_falls_back_before_any_text(make_routed, openai_fake, db_url):
    openai_fake.script("app1_chat", ["403"])
    service = make_routed(providers={"app1_chat": "openai"}, fallback_provider="offline")
    deltas = list(service.stream_chat("你好", site_id=1, session_id="s-1"))
    assert deltas[-1].done and "离线" in "".join(d.text for d in deltas)
    assert [(r["provider"], r["status"], r["fallback_for"]) for r in ledger(db_url)] == [
        ("openai", "failed", None),
        ("offline", "success", "openai"),
    ]


def test_a_fallback_answer_is_cached_under_its_own_route_so_the_primary_is_asked_next_time(
    make_routed, openai_fake, db_url
):
    ask = answering.Ask(site_id=1, app_name="app3_clue", target_id="42", prompt=CLUE_PROMPT, prompt_version="b1")

    def run(service: LLMService) -> answering.Outcome:
        info = answering.RunInfo(
            provider=service.provider, trigger="manual", force=False, dagster_run_id=None, routes=service.routes()
        )
        [outcome] = answering.iter_answers(service, db_url, [ask], info, concurrency=1)
        return outcome

    openai_fake.script("app3_clue", ["401"])
    service = make_routed(provider="openai", fallback_provider="offline")
    first, second = run(service), run(service)

    assert first.answer is not None and second.answer is not None
    assert (first.answer.provider, first.answer.result_json["_provider"]) == ("offline", "offline")
    assert first.answer.prompt_version.startswith("offline:b1")
    assert (second.status, second.answer.provider) == ("answered", "openai")  # not a memo hit of the fallback's
    assert openai_fake.count("app3_clue") == 2
