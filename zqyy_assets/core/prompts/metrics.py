"""The finance figures a prompt carries, their Chinese labels and units, and the change rule.

One table for both sides of the prompt: the app2 builder names its movers with these labels,
and the offline analyst (``zqyy_assets.core.llm.offline``) words and ranks the same figures.
The keys are the columns of ``dws.finance_area_daily`` plus the figures derived from them.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

Unit = Literal["money", "count", "hours", "minutes", "ratio"]


class FinanceMetric(NamedTuple):
    label: str
    unit: Unit
    rise_is_bad: bool = False  # e.g. discounts: more of them is a warning, not good news


FINANCE_METRICS: dict[str, FinanceMetric] = {
    "revenue": FinanceMetric("营业额", "money"),
    "table_fee": FinanceMetric("台费", "money"),
    "assistant_fee": FinanceMetric("助教费", "money"),
    "goods_amount": FinanceMetric("商品及酒水", "money"),
    "discount": FinanceMetric("优惠金额", "money", rise_is_bad=True),
    "orders": FinanceMetric("结算单数", "count"),
    "table_minutes": FinanceMetric("开台时长", "minutes"),
    "table_hours": FinanceMetric("开台时长", "hours"),
    "member_revenue": FinanceMetric("会员消费", "money"),
    "member_orders": FinanceMetric("会员结算单数", "count"),
    "member_share": FinanceMetric("会员消费占比", "ratio"),
    "recharge_amount": FinanceMetric("储值金额", "money"),
    "recharge_count": FinanceMetric("储值笔数", "count"),
    "avg_order_value": FinanceMetric("客单价", "money"),
    "daily_avg_revenue": FinanceMetric("日均营业额", "money"),
    "active_days": FinanceMetric("营业天数", "count"),
}


def pct_change(current: float, previous: float) -> float | None:
    """Percent change, one decimal; None when the comparison is zero (no base to compare to)."""
    if not previous:
        return None
    return round((current - previous) / abs(previous) * 100, 1)
