"""The price table: a model's price by name, snapshot or fallback; overrides from a file and the environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from zqyy_assets.core.llm.settings import LLMSettings
from zqyy_assets.core.pricing import DEFAULT_PRICES, FALLBACK, ModelPrice, PriceTable


def test_a_model_is_priced_by_name_then_by_its_family_then_by_the_fallback() -> None:
    table = PriceTable()
    assert table.price_of("qwen-plus") == DEFAULT_PRICES["qwen-plus"]
    assert table.price_of("qwen-plus-2025-07-28") == DEFAULT_PRICES["qwen-plus"]  # a snapshot
    assert table.price_of("qwen-max-latest") == DEFAULT_PRICES["qwen-max"]
    assert table.price_of("qwen3-max") == DEFAULT_PRICES["qwen3-max"]  # not taken for qwen-max's
    assert table.price_of("qwen-plusplus") == DEFAULT_PRICES[FALLBACK]  # a prefix needs the dash
    assert table.price_of("some-new-model") == table.price_of(None) == table.price_of("") == DEFAULT_PRICES[FALLBACK]
    assert table.price_of("qwen-turbo,qwen-plus") == DEFAULT_PRICES["qwen-turbo"]  # several: the first


def test_cost_prices_each_models_tokens_and_the_rest_at_the_calls_model() -> None:
    table = PriceTable({"a": ModelPrice(1.0, 2.0), "b": ModelPrice(10.0, 20.0), FALLBACK: ModelPrice(100.0, 100.0)})
    assert table.cost("a", 1000, 500) == 2.0  # 1 + 1
    # usage.models[*]: 1000/0 of a, 100/100 of b; 500 more input tokens (a failed attempt) at the call's model a.
    assert table.cost("a,b", 1600, 100, parts=[("a", 1000, 0), ("b", 100, 100)]) == 1.0 + 3.0 + 0.5
    assert table.cost(None, 10, 0) == 1.0  # no model named: the fallback
    assert table.cost("a", 1, 1) == 0.003 and PriceTable().cost("qwen-plus", 1, 1) == 0.000003  # 6 places


def test_overrides_from_a_file_then_the_variable_win_model_by_model(tmp_path: Path) -> None:
    file = tmp_path / "prices.json"
    prices = {
        "qwen-plus": {"input_per_1k": 0.001, "output_per_1k": 0.003},
        "mine": {"input_per_1k": 1, "output_per_1k": 2},
    }
    file.write_text(json.dumps(prices))
    table = PriceTable.load(file, {"mine": {"input_per_1k": 5, "output_per_1k": 6}})
    assert table.price_of("qwen-plus") == ModelPrice(0.001, 0.003)
    assert table.price_of("mine") == ModelPrice(5.0, 6.0)
    assert table.price_of("qwen-max") == DEFAULT_PRICES["qwen-max"]  # untouched


def test_settings_read_the_prices_and_cny_limits_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    file = tmp_path / "prices.json"
    file.write_text(json.dumps({"qwen-max": {"input_per_1k": 0.02, "output_per_1k": 0.06}}))
    monkeypatch.setenv("ZQYY_LLM_PRICES_FILE", str(file))
    monkeypatch.setenv("ZQYY_LLM_PRICES", '{"qwen-turbo": {"input_per_1k": 0.1, "output_per_1k": 0.2}}')
    monkeypatch.setenv("ZQYY_LLM_DAILY_COST_LIMIT_CNY", "12.5")
    monkeypatch.setenv("ZQYY_LLM_MONTHLY_COST_LIMIT_CNY", "")
    settings = LLMSettings()
    table = settings.price_table()
    assert table.price_of("qwen-max") == ModelPrice(0.02, 0.06) and table.price_of("qwen-turbo") == ModelPrice(0.1, 0.2)
    assert (settings.daily_cost_limit_cny, settings.monthly_cost_limit_cny) == (12.5, None)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("ZQYY_LLM_PRICES", '{"qwen-plus": {"input_per_1k": 0.1}}', "qwen-plus"),
        ("ZQYY_LLM_PRICES", '{"qwen-plus": {"input_per_1k": -1, "output_per_1k": 0}}', "negative"),
        ("ZQYY_LLM_PRICES", "not json", "prices"),
        ("ZQYY_LLM_PRICES_FILE", "/nonexistent/prices.json", "/nonexistent/prices.json"),
        ("ZQYY_LLM_DAILY_COST_LIMIT_CNY", "-1", "daily_cost_limit_cny"),
    ],
)
def test_bad_prices_fail_where_the_settings_are_read_naming_the_entry(monkeypatch, variable, value, named) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises((ValidationError, ValueError)) as caught:
        LLMSettings()
    assert named in str(caught.value)
