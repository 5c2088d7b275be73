"""Verifying cited numbers against the prompt's figures: equal within rounding, or derived from two
related figures; the verdict, its storage fields and the blocking setting."""

from typing import Any

import pytest
from pydantic import ValidationError

from zqyy_assets.core.grounding import Verdict, check_answer, ground, grounding_rate, stored_fields
from zqyy_assets.core.settings import GroundingSettings

PROMPT: dict[str, Any] = {
    "period": {
        "metrics": {"revenue": 910792.83, "table_fee": 600000.0, "orders": 1200, "member_share": 0.5523},
    },
    "comparison": {
        "metrics": {"revenue": 800000.0, "table_fee": 500000.0, "orders": 1000, "member_share": 0.5301},
    },
    "change_pct": {"revenue": 13.8, "orders": 20.0},
    "top_movers": [{"name": "VIP包厢台费", "current": 8200.0, "previous": 10400.0}],
    "member": {"visits_30d": 4, "spend_30d": 1234.0, "spend_prev_30d": 1000.0},
    "notes": ["客人说下周带 6 个朋友来"],
}


def _grounded(text: str) -> bool:
    return ground(PROMPT, {"content": text}).grounded


@pytest.mark.parametrize(
    "text",
    [
        "本期营业额 ¥910,792.83",  # the figure itself
        "本期营业额 ¥910,793",  # rounded to the yuan
        "营业额约 91.1万元",  # in 万, rounded
        "营业额 0.0091亿",  # in 亿
        "营业额上升 13.8%",  # a change the prompt gives
        "较对比期增加 ¥110,792.83",  # a difference of the same measure in two periods
        "台费占营业额 65.9%",  # a share of two figures of one period
        "单量增长 20%，台费增长 20.0%",  # changes between the periods
        "会员消费占比 55.2%",  # a share given as a fraction, written as a percentage
        "会员占比提高 2.2 个百分点",  # a percentage-point difference of two shares
        "VIP包厢台费减少 ¥2,200，降幅 21.2%",  # a mover's difference and change
        "本期单量是上期的 1.2倍",  # a ratio
        "近 30 天到店 4 次，消费较前 30 天上升 23.4%",  # windows named by keys; spend_prev_30d -> spend_30d
        "客人会带 6 个朋友",  # a figure written in the prompt's text
    ],
)
def test_grounded_numbers(text: str) -> None:
    assert _grounded(text), text


@pytest.mark.parametrize(
    "text",
    [
        "本期营业额 ¥987,654.32",  # invented
        "本期营业额 ¥910,792.38",  # two digits swapped
        "营业额约 95万",  # 950,000 ± 5,000: not the revenue
        "营业额上升 15.2%",  # not the change
        "会员占比提高 5.1 个百分点",
        "订单 1,350 单",
        "是上期的 2.5倍",
    ],
)
def test_ungrounded_numbers(text: str) -> None:
    assert not _grounded(text), text


def test_unrelated_figures_derive_nothing() -> None:
    # 8200 / 1200 (a mover's current over the orders) would be 683.3%: the two are not related
    assert not _grounded("增长 583.3%")
    assert _grounded("增长 20.0%")  # orders 1200 vs 1000: the same field of the two periods


def test_the_verdict_lists_each_ungrounded_number_with_its_sentence_and_field() -> None:
    answer = {
        "insights": [
            {"title": "营业额上升 13.8%", "content": "本期营业额 ¥910,792.83。会员占比 61.0%，表现亮眼。"},
            {"title": "台费", "content": "台费 ¥600,000", "level": "positive", "metric": "table_fee_2"},
        ],
        "_references": {"site_id": 12345, "tables": [{"table": "dws.finance_area_daily", "rows": 62}]},
        "_provider": "openai:qwen2.5-72b",
    }
    verdict = check_answer("app2_finance", PROMPT, answer)
    assert verdict is not None and not verdict.grounded
    assert (verdict.numbers, verdict.ungrounded_count) == (4, 1)
    [missing] = verdict.ungrounded
    assert (missing.number, missing.sentence, missing.field) == (
        "61.0%",
        "会员占比 61.0%，表现亮眼。",
        "insights.0.content",
    )
    assert Verdict.from_json(verdict.as_json()) == verdict
    assert check_answer("app1_chat", PROMPT, {"text": "¥1"}) is None  # the chat cites no checked figures
    assert grounding_rate([verdict, ground(PROMPT, {"t": "¥600,000"}), None]) == 0.5
    assert grounding_rate([None]) is None


def test_stored_fields_block_only_the_configured_apps() -> None:
    bad = {"insights": [{"title": "t", "content": "¥1,111.11"}]}
    good = {"insights": [{"title": "t", "content": "¥600,000"}]}
    blocking = {"app2_finance"}
    assert stored_fields("app2_finance", PROMPT, bad, blocking)["status"] == "ungrounded"
    assert stored_fields("app2_finance", PROMPT, good, blocking)["status"] == "valid"
    flagged = stored_fields("app2a_finance_area", PROMPT, bad, blocking)
    assert flagged["status"] == "valid" and flagged["grounding"] is not None and not flagged["grounding"]["grounded"]


def test_blocking_apps_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZQYY_GROUNDING_BLOCKING_APPS", raising=False)
    assert GroundingSettings().blocking_apps == {"app2_finance", "app2a_finance_area"}
    monkeypatch.setenv("ZQYY_GROUNDING_BLOCKING_APPS", "")
    assert GroundingSettings().blocking_apps == frozenset()
    monkeypatch.setenv("ZQYY_GROUNDING_BLOCKING_APPS", "app2_finance, app7_customer")
    assert GroundingSettings().blocking_apps == {"app2_finance", "app7_customer"}
    monkeypatch.setenv("ZQYY_GROUNDING_BLOCKING_APPS", "app2_finance,app1_chat")
    with pytest.raises(ValidationError, match="app1_chat"):
        GroundingSettings()
