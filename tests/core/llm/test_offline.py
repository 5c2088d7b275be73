"""The offline analyst: answers computed from the prompt's figures, schema-valid, deterministic."""

from __future__ import annotations

import json

import pytest

from tests.core.llm.conftest import ledger
from zqyy_assets.core.answer_schemas import SCHEMAS, validate_answer
from zqyy_assets.core.apps import APP_NAMES, prompt_version
from zqyy_assets.core.llm import offline

APP2 = {
    "site": {"site_id": 1, "name": "星辰台球"},
    "time_dimension": "last_month",
    "area": "vip",
    "area_label": "VIP包厢",
    "period": {
        "start": "2026-10-01",
        "end": "2026-10-31",
        "metrics": {
            "revenue": "50,000.00",
            "table_fee": 30000,
            "assistant_fee": 6000,
            "goods_amount": 14000,
            "discount": 5000,
            "orders": 400,
            "member_share": 0.55,
        },
    },
    "comparison": {
        "start": "2026-09-01",
        "end": "2026-09-30",
        "metrics": {
            "revenue": 40000,
            "table_fee": 29000,
            "assistant_fee": 8000,
            "goods_amount": 3000,
            "discount": 2500,
            "orders": 390,
            "member_share": 0.6,
        },
    },
}
MEMBER = {
    "member": {
        "member_name": "王五",
        "recency_days": 45,
        "visits_30d": 0,
        "visits_90d": 2,
        "spend_30d": 0,
        "spend_prev_30d": 800,
        "spend_90d": 4200,
        "spend_trend": "inactive",
        "recharge_180d": 3000,
        "favourite_area": "vip",
        "favourite_time_slot": "周五晚上",
    }
}
RELATION = {
    **MEMBER,
    "assistant_member": {"services": 12, "minutes": 1500, "fees": 4500, "days_since_last_service": 40},
    "assistant_name": "小美",
}
NOTE = {"note_content": "王哥喜欢打中式八球，常和同事一起来。上次说台费有点贵。", "noted_by_name": "小美"}
PROMPTS = {
    "app1_chat": "本月营业额怎么样？",
    "app2_finance": {**APP2, "area": "all"},
    "app2a_finance_area": APP2,
    "app3_clue": MEMBER,
    "app4_analysis": RELATION,
    "app5_tactics": {**RELATION, "app4_result": offline.relationship(RELATION)},
    "app6_note": NOTE,
    "app7_customer": {**MEMBER, "clues": offline.member_clues(MEMBER)},
    "app8_consolidation": {
        "app3_clues": offline.member_clues(MEMBER),
        "app6_clues": offline.note_analysis(NOTE)["clues"],
    },
}


def test_every_app_has_a_schema_prompt_and_analyst():
    assert set(SCHEMAS) == set(APP_NAMES) == set(PROMPTS)
    for name in APP_NAMES:
        assert prompt_version(name) == "2026-11-22.1"


@pytest.mark.parametrize("app", APP_NAMES)
def test_answers_are_valid_labelled_and_deterministic(app):
    answer = offline.analyse(app, PROMPTS[app])
    validate_answer(app, answer)
    assert answer["_provider"] == "offline"
    text_prompt = PROMPTS[app] if isinstance(PROMPTS[app], str) else json.dumps(PROMPTS[app], ensure_ascii=False)
    assert offline.analyse(app, text_prompt) == answer


@pytest.mark.parametrize("app", APP_NAMES)
@pytest.mark.parametrize("prompt", ["", "没有数据的一段话", "[1, 2, 3]", {}, {"member": None, "area": 5}, '{"x":'])
def test_answers_stay_valid_on_thin_or_odd_prompts(app, prompt):
    validate_answer(app, offline.analyse(app, prompt))


def test_finance_reports_the_biggest_movers_against_the_comparison_period():
    insights = offline.analyse("app2a_finance_area", APP2)["insights"]
    headline = insights[0]
    assert headline["metric"] == "revenue" and headline["change_pct"] == 25.0 and headline["level"] == "positive"
    assert headline["title"].startswith("VIP包厢上月营业额上升")
    movers = [(i["metric"], i["change_pct"], i["level"]) for i in insights[1:4]]
    # goods +366.7 %, discount +100 % (bad news), assistant fee -25 %; orders and table fee barely moved.
    assert movers == [
        ("goods_amount", 366.7, "positive"),
        ("discount", 100.0, "warning"),
        ("assistant_fee", -25.0, "warning"),
    ]
    share = next(i for i in insights if i["metric"] == "member_share")
    assert share["change_pct"] == -5.0 and "55.0%" in share["content"]


def test_finance_uses_top_movers_when_the_prompt_names_them():
    prompt = {
        **APP2,
        "top_movers": [
            {"name": "斯诺克区台费", "metric": "table_fee", "current": 8000, "previous": 10000},
            {"name": "KTV酒水", "metric": "goods_amount", "current": 3000, "previous": 1000, "change_pct": 200},
        ],
    }
    insights = offline.analyse("app2_finance", prompt)["insights"]
    # In the builder's order (it ranks by absolute change), with the missing percentage computed.
    assert [(i["title"], i["change_pct"], i["level"]) for i in insights[1:3]] == [
        ("斯诺克区台费下降 20.0%", -20.0, "warning"),
        ("KTV酒水上升 200.0%", 200.0, "positive"),
    ]


def test_member_apps_read_the_member_figures():
    assert offline.customer(MEMBER)["segment"] == "沉睡会员"
    assert offline.customer({"spend_90d": 6000, "recency_days": 2})["segment"] == "高价值常客"
    clues = {c["summary"] for c in offline.member_clues(MEMBER)}
    assert "偏好在VIP包厢消费" in clues and "常在周五晚上到店" in clues
    assert offline.relationship(RELATION)["relationship_level"] == "strong"
    assert offline.tactics(PROMPTS["app5_tactics"])["opening_line"].startswith("好久不见")
    note = offline.note_analysis(NOTE)
    assert {c["category"] for c in note["clues"]} == {"玩法偏好", "社交关系", "重要反馈"}
    assert 0 < note["score"] <= 100


def test_consolidation_merges_sources_and_names_them():
    shared = {"category": "玩法偏好", "emoji": "🎱", "summary": "偏好斯诺克", "detail": "d"}
    answer = offline.consolidate({"app3_clues": [shared], "app6_clues": [shared, {**shared, "summary": "周末来"}]})
    assert [(c["summary"], c["providers"]) for c in answer["clues"]] == [
        ("偏好斯诺克", ["app3", "app6"]),
        ("周末来", ["app6"]),
    ]


def test_offline_service_needs_no_key_and_no_network(make_service, db_url):
    service = make_service(provider="offline", api_key=None, base_url="http://127.0.0.1:9/unreachable")
    answer = service.call_app("app2_finance", {**APP2, "area": "all"}, site_id=1, target_id="last_month__all")
    assert answer.provider == "offline" and answer.model == offline.OFFLINE_MODEL
    validate_answer("app2_finance", answer.payload)
    [row] = ledger(db_url)
    assert (row["provider"], row["status"], row["tokens_used"]) == ("offline", "success", 0)
    assert json.loads(row["response_text"]) == answer.payload
