"""The answer preview's shape per app and its size bound, whatever the model wrote."""

from zqyy_assets.core.answer_preview import PREVIEW_MAX_CHARS, answer_preview


def test_app2_shows_the_first_insights_with_their_change_and_counts_the_rest() -> None:
    insights = [
        {"title": f"营收{i}", "content": "包厢\n增长", "change_pct": 12.5, "level": "positive"} for i in range(5)
    ]
    assert answer_preview("app2_finance", {"insights": insights}).splitlines() == [
        "- **营收0** (+12.5 %): 包厢 增长",
        "- **营收1** (+12.5 %): 包厢 增长",
        "- **营收2** (+12.5 %): 包厢 增长",
        "- … 2 more",
    ]


def test_app6_and_app7_lead_with_their_score_and_segment() -> None:
    note = {
        "score": 85,
        "summary": "会员喜欢周末来",
        "clues": [{"category": "消费习惯", "emoji": "", "summary": "周末"}],
    }
    assert answer_preview("app6_note", note) == "**score 85**: 会员喜欢周末来\n- **消费习惯**: 周末"
    customer = {
        "segment": "高价值常客",
        "summary": "稳定",
        "value_level": "high",
        "churn_risk": "low",
        "suggestions": [],
    }
    assert answer_preview("app7_customer", customer) == "**高价值常客** (value high, churn risk low): 稳定"


def test_a_huge_or_odd_answer_stays_within_the_bound() -> None:
    huge = {"clues": [{"category": "x" * 5000, "summary": "y" * 5000, "emoji": "🎱"} for _ in range(50)]}
    preview = answer_preview("app3_clue", huge)
    assert len(preview) <= PREVIEW_MAX_CHARS and preview.endswith("…")
    long_lines = {"insights": [{"title": "t" * 150, "content": "c" * 150} for _ in range(3)]}
    assert len(answer_preview("app2_finance", long_lines)) <= PREVIEW_MAX_CHARS
    assert answer_preview("app5_tactics", ["not", "an", "object"]) == ""
    assert answer_preview("app3_clue", {"clues": "not a list"}) == ""
