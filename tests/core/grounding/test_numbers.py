"""Finding the numbers a Chinese answer cites, with the value and rounding each one shows."""

import pytest

from zqyy_assets.core.grounding.numbers import cited_numbers, sentence_around


def _found(text: str) -> list[tuple[str, float, float, str]]:
    return [(n.text, n.value, n.tolerance, n.kind) for n in cited_numbers(text)]


def test_amounts_with_separators_scales_and_units() -> None:
    assert _found("本期营业额 ¥910,792.83，对比期 ￥1,200，变化 -¥1,234.5；储值 12.3万元，年度 1.2亿，另收 300元") == [
        ("¥910,792.83", 910792.83, 0.005, "amount"),
        ("￥1,200", 1200.0, 0.5, "amount"),
        ("¥1,234.5", 1234.5, 0.05, "amount"),
        ("12.3万元", 123000.0, 500.0, "amount"),
        ("1.2亿", 120000000.0, 5000000.0, "quantity"),
        ("300元", 300.0, 0.5, "amount"),
    ]


def test_percentages_points_multiples_and_counts() -> None:
    assert _found("营业额下降 12.5%，会员占比提高 3.5 个百分点，是上月的 1.5倍；到店 12人、8 次、30单，占 35％") == [
        ("12.5%", 12.5, 0.05, "percent"),
        ("3.5 个百分点", 3.5, 0.05, "points"),
        ("1.5倍", 1.5, 0.05, "multiple"),
        ("12", 12.0, 0.5, "quantity"),
        ("8", 8.0, 0.5, "quantity"),
        ("30", 30.0, 0.5, "quantity"),
        ("35％", 35.0, 0.5, "percent"),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "统计区间 2026-11-01 至 2026-11-22",
        "11月22日（周六）最忙",
        "2026年以来",
        "20:00-24:00 时段最热",
        "晚上8点后",
        "排名第3",
        "app2 与 hallA2 区",
        "模型 qwen2.5-72b-instruct",
        "3号台常被预订",
        "近三个月",  # Chinese numerals are words
    ],
)
def test_dates_times_ordinals_and_names_are_not_figures(text: str) -> None:
    assert cited_numbers(text) == []


def test_the_sentence_of_a_number() -> None:
    text = "本期营业额 ¥1,200。会员占比 35%，较上期提高 2 个百分点！建议关注"
    [_, share, points] = cited_numbers(text)
    assert sentence_around(text, share.start, share.end) == "会员占比 35%，较上期提高 2 个百分点！"
    assert sentence_around(text, points.start, points.end) == "会员占比 35%，较上期提高 2 个百分点！"
    last = cited_numbers("第一句。无标点的最后一句 ¥5")[0]
    assert sentence_around("第一句。无标点的最后一句 ¥5", last.start, last.end) == "无标点的最后一句 ¥5"
