"""Each ledger row gets its cost in CNY, priced from usage.models[*]; the budget may be set in CNY."""

from __future__ import annotations

import pytest

from tests.core.llm.conftest import ledger
from zqyy_assets.core import db
from zqyy_assets.core.llm.errors import BudgetExceeded, TransientLLMError
from zqyy_assets.core.llm.ledger import CallRecord, insert_row
from zqyy_assets.core.pricing import DEFAULT_PRICES

PROMPT = {"member": {"member_id": 42}}


def _priced(model: str, tokens_in: int, tokens_out: int) -> float:
    price = DEFAULT_PRICES[model]
    return round((tokens_in * price.input_per_1k + tokens_out * price.output_per_1k) / 1000, 6)


@pytest.mark.parametrize("model", ["qwen-plus", "qwen-max", "qwen-turbo"])
def test_a_calls_cost_is_its_models_price_on_its_row_and_answer(make_service, fake, db_url, model) -> None:
    fake.script("app3_clue", tokens=(1200, 340), model=model)
    answer = make_service().call_app("app3_clue", PROMPT, site_id=1, target_id="42")
    [row] = ledger(db_url)
    assert answer.cost_cny == float(row["cost_cny"]) == _priced(model, 1200, 340) > 0


def test_the_price_table_of_the_settings_is_used(make_service, fake, db_url) -> None:
    fake.script("app3_clue", tokens=(1000, 1000), model="qwen-plus")
    service = make_service(prices={"qwen-plus": {"input_per_1k": 1.0, "output_per_1k": 2.0}})
    assert service.call_app("app3_clue", PROMPT, site_id=1).cost_cny == 3.0


def test_failed_attempts_tokens_are_priced_too(make_service, fake, db_url) -> None:
    # Two answers that are not JSON (each paid for), then one that is: all three attempts' tokens.
    fake.script("app3_clue", ["invalid_json", "invalid_json"], tokens=(100, 10), model="qwen-max")
    answer = make_service().call_app("app3_clue", PROMPT, site_id=1)
    [row] = ledger(db_url)
    assert (row["tokens_in"], row["tokens_out"], row["attempts"]) == (300, 30, 3)
    assert answer.cost_cny == float(row["cost_cny"]) == _priced("qwen-max", 300, 30)


def test_a_failed_call_books_the_cost_of_what_it_spent(make_service, fake, db_url) -> None:
    fake.script("app3_clue", ["invalid_json"] * 3, tokens=(100, 10), model="qwen-max")
    with pytest.raises(TransientLLMError):
        make_service().call_app("app3_clue", PROMPT, site_id=1)
    [row] = ledger(db_url)
    assert row["status"] == "failed" and float(row["cost_cny"]) == _priced("qwen-max", 300, 30)


def test_the_chat_stream_books_its_cost(make_service, fake, db_url) -> None:
    fake.script("app1_chat", tokens=(500, 200), model="qwen-turbo")
    deltas = list(make_service().stream_chat("你好", site_id=1))
    assert deltas[-1].done
    [row] = ledger(db_url)
    assert row["status"] == "success" and float(row["cost_cny"]) == _priced("qwen-turbo", 500, 200)


def test_the_offline_provider_costs_nothing(make_service, db_url) -> None:
    answer = make_service(provider="offline").call_app("app3_clue", PROMPT, site_id=1)
    [row] = ledger(db_url)
    assert answer.cost_cny == 0 and float(row["cost_cny"]) == 0


def test_a_daily_cny_limit_refuses_calls_once_spent(make_service, fake, db_url) -> None:
    # qwen-max: 10,000 tokens in at 0.0024 / 1k = 0.024 CNY a call; the limit is 0.03.
    fake.script("app3_clue", tokens=(10_000, 0), model="qwen-max")
    service = make_service(daily_cost_limit_cny=0.03)
    service.call_app("app3_clue", PROMPT, site_id=1)
    service.call_app("app3_clue", PROMPT, site_id=1)  # 0.024 < 0.03: admitted, overruns by its own size
    with pytest.raises(BudgetExceeded) as refused:
        service.call_app("app3_clue", PROMPT, site_id=1)
    assert "daily CNY budget spent: 0.0480 of 0.03 CNY" in str(refused.value)
    assert [r["status"] for r in ledger(db_url)] == ["success", "success", "budget_exceeded"]
    assert fake.count("app3_clue") == 2
    status = service.budget()
    assert (status.daily_cost_cny, status.daily_cost_limit_cny, status.monthly_cost_limit_cny) == (0.048, 0.03, None)


def test_a_monthly_cny_limit_is_enforced_too(make_service, fake, db_url) -> None:
    fake.script("app3_clue", tokens=(10_000, 0), model="qwen-max")
    service = make_service(monthly_cost_limit_cny=0.01)
    service.call_app("app3_clue", PROMPT, site_id=1)
    with pytest.raises(BudgetExceeded, match="monthly CNY budget"):
        service.call_app("app3_clue", PROMPT, site_id=1)


def test_a_running_call_reserves_its_price_against_the_cny_budget(make_service, db_url) -> None:
    service = make_service(budget_reserve_tokens=2_000, daily_cost_limit_cny=1.0)
    reserve = service.guards.settings.budget.reserve_cost_cny
    assert reserve == service.prices.cost(None, 1_500, 500) > 0  # priced at the fallback, 3/4 input
    record = CallRecord(site_id=1, app_name="app3_clue", app_id="x", provider="dashscope", request_prompt="p")
    with db.connect(db_url, autocommit=True) as conn, conn.transaction():
        insert_row(conn, record, status="running", reserved=2_000)
    status = service.budget()
    assert (status.daily_used, status.daily_cost_cny) == (2_000, reserve)
