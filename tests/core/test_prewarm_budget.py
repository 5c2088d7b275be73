"""Budget planning of the prewarm: the most valuable answers that fit, by the priority setting."""

from __future__ import annotations

import pytest

from zqyy_assets.core.llm.budget import BudgetStatus
from zqyy_assets.core.prewarm_budget import DEFAULT_PRIORITY, parse_priority, plan, tokens_left, value_rank


def test_priority_names_windows_first_and_keeps_the_rest_in_default_order() -> None:
    assert parse_priority("last_6_months, this_week") == (
        "last_6_months",
        "this_week",
        *(w for w in DEFAULT_PRIORITY if w not in ("last_6_months", "this_week")),
    )
    with pytest.raises(ValueError, match="APP2_PREWARM_PRIORITY: unknown time dimension"):
        parse_priority("this_month,yesterday")


def test_the_plan_takes_whole_site_then_priority_windows_until_the_budget_is_spent() -> None:
    priority = parse_priority("this_month,this_week")
    items = [
        (site, window, area)
        for site in (1, 2)
        for window in ("last_month", "this_week", "this_month")
        for area in ("vip", "all")
    ]

    chosen = plan(items, cost=lambda i: 10, rank=lambda i: value_rank(i[1], i[2], i[0], priority), left=45)

    assert set(chosen.kept) == {
        (1, "this_month", "all"),
        (2, "this_month", "all"),
        (1, "this_week", "all"),
        (2, "this_week", "all"),
    }
    assert (chosen.estimate_tokens, chosen.planned_tokens, len(chosen.skipped)) == (120, 40, 8)
    assert chosen.kept == [i for i in items if i in set(chosen.kept)]  # in their original order
    everything = plan(items, cost=lambda i: 10, rank=lambda i: (0,), left=120)
    assert everything.kept == items and not everything.skipped and "nothing skipped" in everything.summary()


def test_tokens_left_is_the_tighter_of_day_and_month() -> None:
    assert tokens_left(BudgetStatus(90, 100, 500, 2_000)) == 10
    assert tokens_left(BudgetStatus(10, 100, 1_995, 2_000)) == 5
    assert tokens_left(BudgetStatus(120, 100, 0, 2_000)) == 0
