"""LLMResource inside real Dagster runs: metadata, Failure without retry, RetryPolicy under the request cap."""

# No `from __future__ import annotations`: Dagster reads the asset functions' annotations at definition time.
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest

from tests.core.llm.conftest import FAST, ledger
from zqyy_assets.core.apps import APP_NAMES
from zqyy_assets.core.llm.errors import GuardRefused
from zqyy_assets.core.llm.settings import MAX_REQUESTS_PER_ANSWER, LLMSettings
from zqyy_assets.defs.ai.resources import LLMResource, llm_resource_from_env


@pytest.fixture
def make_resource(db_url, fake):
    made: list[LLMResource] = []

    def make(**overrides) -> LLMResource:
        res = LLMResource(
            **{
                "database_url": db_url,
                "provider": "dashscope",
                "api_key": FAST["api_key"],
                "base_url": fake.base_url,
                "app_ids": FAST["app_ids"],
                "retry_base_delay_seconds": 0.01,
                "retry_max_delay_seconds": 0.05,
                "max_attempts": 3,
                **overrides,
            }
        )
        made.append(res)
        return res

    yield make
    for res in made:
        res.close()


@pytest.fixture
def resource(make_resource):
    return make_resource()


@dg.asset
def three_clues(context: dg.AssetExecutionContext, llm: LLMResource) -> None:
    def ask(member: int):
        return llm.call_app("app3_clue", {"recency_days": member}, site_id=1, target_id=str(member), context=context)

    with ThreadPoolExecutor(2) as pool:  # calls finishing on worker threads, as in the AI assets
        list(pool.map(ask, (1, 2, 3)))


@dg.asset(retry_policy=dg.RetryPolicy(max_retries=3))
def flaky_clue(context: dg.AssetExecutionContext, llm: LLMResource) -> None:
    llm.call_app("app3_clue", {"recency_days": 9}, site_id=1, target_id="9", context=context)


def test_usage_lands_on_the_materialization(resource, fake, db_url):
    fake.script("app3_clue", tokens=(100, 20))
    result = dg.materialize([three_clues], resources={"llm": resource})

    assert result.success
    [materialization] = result.asset_materializations_for_node("three_clues")
    meta = {k: v.value for k, v in materialization.metadata.items()}
    assert meta["llm.calls"] == 3 and meta["llm.failed_calls"] == 0
    assert (meta["llm.tokens_in"], meta["llm.tokens_out"], meta["llm.total_tokens"]) == (300, 60, 360)
    assert meta["llm.provider"] == "dashscope" and meta["llm.model"] == "qwen-plus"
    assert meta["llm.prompt_versions"] == "app3_clue=2026-11-22.1"
    assert {r["dagster_run_id"] for r in ledger(db_url)} == {result.run_id}


def test_retry_policy_never_sends_more_than_the_cap(resource, fake, db_url):
    fake.script("app3_clue", ["500"] * 20)
    result = dg.materialize([flaky_clue], resources={"llm": resource}, raise_on_error=False)

    assert not result.success
    assert fake.count() == MAX_REQUESTS_PER_ANSWER  # 3 + 1, then the cap stops the third step attempt
    rows = ledger(db_url)
    assert [(r["status"], r["attempts"], r["error_code"]) for r in rows] == [
        ("failed", 3, "InternalError"),
        ("failed", 1, "InternalError"),
        ("failed", 0, "RequestCapReached"),
    ]
    [failure] = result.get_step_failure_events()
    assert "RequestCapReached" in failure.step_failure_data.user_failure_data.description


def test_permanent_error_fails_the_step_without_retry(resource, fake):
    fake.script("app3_clue", ["401", "ok"])
    result = dg.materialize([flaky_clue], resources={"llm": resource}, raise_on_error=False)

    assert not result.success and fake.count() == 1
    [failure] = result.get_step_failure_events()
    data = failure.step_failure_data.user_failure_data
    assert "InvalidApiKey" in data.description and "Invalid API-key provided." in data.description
    assert data.metadata["error_code"].value == "InvalidApiKey"
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)


def test_permanent_error_raises_failure_with_no_retries(resource, fake):
    fake.script("app5_tactics", ["data_inspection"])
    with pytest.raises(dg.Failure) as caught:
        resource.call_app("app5_tactics", {}, site_id=1)
    assert caught.value.allow_retries is False
    assert "DataInspectionFailed" in caught.value.description


@dg.asset
def refused_clue(context: dg.AssetExecutionContext, llm: LLMResource) -> None:
    with pytest.raises(GuardRefused) as caught:
        llm.call_app("app3_clue", {}, site_id=1, context=context)
    assert caught.value.reason == "budget_exceeded"


def test_guard_refusal_is_a_clear_error_and_counted(make_resource, fake, db_url):
    result = dg.materialize([refused_clue], resources={"llm": make_resource(daily_token_limit=0)})

    [materialization] = result.asset_materializations_for_node("refused_clue")
    assert materialization.metadata["llm.refused_calls"].value == 1
    assert materialization.metadata["llm.calls"].value == 0
    assert fake.count() == 0
    assert [r["status"] for r in ledger(db_url)] == ["budget_exceeded"]


def test_settings_come_from_the_environment(db_url, fake, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", FAST["api_key"])
    monkeypatch.setenv("DASHSCOPE_BASE_URL", fake.base_url)
    monkeypatch.setenv("DASHSCOPE_APP_ID_APP6_NOTE", "fake-app6_note")
    monkeypatch.setenv("ZQYY_LLM_DAILY_TOKEN_LIMIT", "12345")
    monkeypatch.delenv("ZQYY_LLM_PROVIDER", raising=False)
    res = LLMResource(database_url=db_url)
    try:
        assert res.llm_settings().daily_token_limit == 12345
        answer = res.call_app("app6_note", {"note_content": "喜欢斯诺克"}, site_id=1)
        assert answer.provider == "dashscope" and fake.requests()[0]["app_id"] == "fake-app6_note"
        assert "api_key" not in repr(res.llm_settings()).replace("api_key=SecretStr('**********')", "")
    finally:
        res.close()


def test_no_key_means_the_offline_analyst(db_url, fake, monkeypatch):
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.delenv("ZQYY_LLM_PROVIDER", raising=False)
    for name in APP_NAMES:
        monkeypatch.delenv(f"DASHSCOPE_APP_ID_{name.upper()}", raising=False)
    res = LLMResource(database_url=db_url)
    try:
        answer = res.call_app("app7_customer", {"recency_days": 40, "spend_90d": 5000}, site_id=1)
    finally:
        res.close()
    assert answer.provider == "offline" and answer.tokens_in == answer.tokens_out == 0
    assert answer.payload["churn_risk"] == "high" and answer.payload["_provider"] == "offline"
    assert fake.count() == 0
    [row] = ledger(db_url)
    assert (row["provider"], row["status"], row["model"]) == ("offline", "success", "offline-analyst-1")


def test_app_ids_are_read_once_into_the_settings(db_url, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_APP_ID_APP3_CLUE", "from-env")
    res = LLMResource(database_url=db_url, app_ids={"app6_note": "given"})
    settings = res.llm_settings()
    monkeypatch.delenv("DASHSCOPE_APP_ID_APP3_CLUE")
    assert settings.app_id("app3_clue") == "from-env" and settings.app_id("app6_note") == "given"


def test_every_setting_is_a_resource_field():
    assert set(LLMSettings.model_fields) <= set(LLMResource.model_fields)


def test_resource_from_env_binds_env_vars_and_skips_unset_ones(db_url, fake):
    env = {
        "DATABASE_URL": db_url,
        "DASHSCOPE_API_KEY": FAST["api_key"],
        "DASHSCOPE_BASE_URL": fake.base_url,
        "DASHSCOPE_APP_ID_APP3_CLUE": "fake-app3_clue",
        "ZQYY_LLM_DAILY_TOKEN_LIMIT": "12345",
        "ZQYY_LLM_RETRY_BASE_DELAY_SECONDS": "0.5",
        "ZQYY_LLM_WORKSPACE": "",  # blank is unset
        "ZQYY_LLM_DAILY_COST_LIMIT_CNY": "25.5",
        "ZQYY_LLM_PRICES": '{"qwen-plus": {"input_per_1k": 0.001, "output_per_1k": 0.003}}',
    }
    res = llm_resource_from_env(env)
    # the UI shows where a value comes from, never the secret itself
    assert isinstance(res.api_key, dg.EnvVar) and res.api_key.env_var_name == "DASHSCOPE_API_KEY"
    assert res.database_url.env_var_name == "DATABASE_URL"
    assert res.app_ids["app3_clue"].env_var_name == "DASHSCOPE_APP_ID_APP3_CLUE" and "app6_note" not in res.app_ids
    assert res.daily_token_limit.name == "ZQYY_LLM_DAILY_TOKEN_LIMIT"
    assert res.retry_base_delay_seconds == 0.5  # no float source in Dagster: the value, read once
    assert res.workspace is None and res.monthly_token_limit is None and res.provider is None
    assert res.daily_cost_limit_cny == 25.5 and res.monthly_cost_limit_cny is None
    assert res.prices == {"qwen-plus": {"input_per_1k": 0.001, "output_per_1k": 0.003}}
    settings = res.llm_settings()
    assert settings.daily_cost_limit_cny == 25.5 and settings.price_table().price_of("qwen-plus").input_per_1k == 0.001


def test_resource_from_env_resolves_in_a_run(db_url, fake, monkeypatch):
    for name, value in {
        "DATABASE_URL": db_url,
        "DASHSCOPE_API_KEY": FAST["api_key"],
        "DASHSCOPE_BASE_URL": fake.base_url,
        "DASHSCOPE_APP_ID_APP3_CLUE": "fake-app3_clue",
        "ZQYY_LLM_MAX_ATTEMPTS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ZQYY_LLM_PROVIDER", raising=False)
    monkeypatch.delenv("DASHSCOPE_WORKSPACE", raising=False)  # optional and unset: must not fail the run

    @dg.asset
    def one_clue(context: dg.AssetExecutionContext, llm: LLMResource) -> None:
        assert llm.llm_settings().max_attempts == 2
        llm.call_app("app3_clue", {"recency_days": 1}, site_id=1, context=context)

    res = llm_resource_from_env()
    try:
        assert dg.materialize([one_clue], resources={"llm": res}).success
    finally:
        res.close()
    assert fake.requests()[0]["app_id"] == "fake-app3_clue"
