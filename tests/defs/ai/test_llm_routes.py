"""An app routed to an OpenAI-compatible model, and its fallback, through Dagster: the real SDKs
against both fakes, the answers and their labels in the cache and the materialization's metadata."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from tests.defs.ai.conftest import cache_rows, materialize, metadata
from zqyy_assets.core import db
from zqyy_assets.core.apps import prompt_version
from zqyy_assets.core.llm.settings import load_settings
from zqyy_assets.defs.ai.assets import app3_clue
from zqyy_assets.defs.ai.resources import llm_resource_from_env
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource
from zqyy_assets.testing.fake_openai import FakeOpenAI


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


def test_a_member_app_on_an_openai_compatible_model_with_dashscope_as_its_fallback(
    venue: str, make_llm: Any, fake: Any, openai_fake: FakeOpenAI
) -> None:
    resources = {
        "llm": make_llm(
            providers={"app3_clue": "openai"},
            openai_base_url=openai_fake.base_url,
            model="qwen3-32b",
            fallback_provider="dashscope",
        ),
        "postgres": PostgresResource(database_url=venue),
        "venue_calendar": VenueCalendarResource(),
    }
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("members", ["1-100"])
    openai_fake.script("app3_clue", ["401"])

    fell_back = materialize([app3_clue], resources, instance=instance, partition_key="1-100")
    healthy = materialize([app3_clue], resources, instance=instance, partition_key="1-100")
    again = materialize([app3_clue], resources, instance=instance, partition_key="1-100")

    assert fell_back.success and healthy.success and again.success
    first, second = cache_rows(venue, "app3_clue")
    assert (first["provider"], first["result_json"]["_provider"]) == ("dashscope", "dashscope")
    assert metadata(fell_back, "app3_clue")["provider"] == "dashscope" and fake.count("app3_clue") == 1
    # The fallback's answer was memoized under its own route: the healthy primary is asked again.
    assert (second["provider"], second["model"]) == ("openai", "qwen3-32b")
    assert "_provider" not in second["result_json"]
    assert second["prompt_version"] == f"openai/qwen3-32b:app3-p1+sys.{prompt_version('app3_clue')}"
    assert metadata(healthy, "app3_clue")["provider"] == "openai"
    assert metadata(again, "app3_clue")["cache_hits"] == 1 and openai_fake.count("app3_clue") == 2
    assert [r["model"] for r in openai_fake.requests("app3_clue")] == ["qwen3-32b", "qwen3-32b"]
    with db.connect(venue) as conn:
        rows = conn.execute(
            "SELECT provider, status, fallback_for FROM biz.ai_call_ledger WHERE app_name = 'app3_clue' ORDER BY id"
        ).fetchall()
    assert [(r["provider"], r["status"], r["fallback_for"]) for r in rows] == [
        ("openai", "failed", None),
        ("dashscope", "success", "openai"),
        ("openai", "success", None),
    ]


def test_the_code_location_binds_per_app_providers_and_models_from_their_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {
        "ZQYY_LLM_PROVIDER": "dashscope",
        "ZQYY_LLM_PROVIDER_APP1_CHAT": "openai",
        "ZQYY_LLM_MODEL": "qwen-plus",
        "ZQYY_LLM_MODEL_APP1_CHAT": "qwen3-8b",
        "ZQYY_LLM_FALLBACK_PROVIDER": "offline",
        "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
        "OPENAI_API_KEY": "sk-secret",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    resource = llm_resource_from_env(env)

    assert resource.providers == {"app1_chat": dg.EnvVar("ZQYY_LLM_PROVIDER_APP1_CHAT")}
    assert resource.models == {"app1_chat": dg.EnvVar("ZQYY_LLM_MODEL_APP1_CHAT")}
    assert resource.openai_api_key == dg.EnvVar("OPENAI_API_KEY")  # the UI shows the variable, not the key
    assert resource.fallback_provider == dg.EnvVar("ZQYY_LLM_FALLBACK_PROVIDER")
    settings = load_settings()  # everything from the environment
    assert (settings.provider_for("app1_chat"), settings.model_for("app1_chat")) == ("openai", "qwen3-8b")
    assert (settings.provider_for("app3_clue"), settings.fallback_provider) == ("dashscope", "offline")
