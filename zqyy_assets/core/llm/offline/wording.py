"""How the offline analyst writes figures and changes for venue staff (Chinese, yuan, percent)."""

from __future__ import annotations

from typing import Any, Literal

from zqyy_assets.core.prompts.metrics import Unit

SIGNIFICANT_PCT = 5.0  # a change smaller than this is "info", neither good nor bad news

Level = Literal["info", "positive", "warning"]
# A clue as the schemas of app3/app6/app8 want it (app8 adds "providers").
Clue = dict[str, Any]


def money_text(value: float) -> str:
    """Yuan, with fen only when there are any: ¥1,200 or ¥1,200.50."""
    return f"¥{value:,.0f}" if abs(value - round(value)) < 0.005 else f"¥{value:,.2f}"


def fmt(value: float, unit: Unit) -> str:
    if unit == "money":
        return money_text(value)
    if unit == "ratio":  # a share (0.55) or already a percentage (55)
        return f"{value * 100:.1f}%" if value <= 1 else f"{value:.1f}%"
    if unit == "hours":
        return f"{value:,.1f} 小时"
    if unit == "minutes":
        return f"{value / 60:,.1f} 小时"
    return f"{value:,.0f}"


def trend_word(change: float | None) -> str:
    """A percent change in words; None (no comparison base) reads as new."""
    if change is None:
        return "新增"
    if change > 0:
        return f"上升 {change:.1f}%"
    if change < 0:
        return f"下降 {abs(change):.1f}%"
    return "持平"


def level_for(change: float | None, rise_is_bad: bool) -> Level:
    if change is None or abs(change) < SIGNIFICANT_PCT:
        return "info"
    good = (change > 0) != rise_is_bad
    return "positive" if good else "warning"


def clue(category: str, emoji: str, summary: str, detail: str) -> Clue:
    return {"category": category, "emoji": emoji, "summary": summary, "detail": detail}
