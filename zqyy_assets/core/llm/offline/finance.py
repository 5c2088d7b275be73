"""The offline analyst for app2_finance and app2a_finance_area (one site, time dimension and area).

Reads the app2 prompt::

    {
      "site": {"site_id": 1, "name": "星辰台球"},
      "time_dimension": "this_month",            # this_month, last_month, this_week, ...
      "area": "all",                             # all, hall, hallA..C, vip, snooker, mahjong, ktv
      "period":     {"start": "2026-11-01", "end": "2026-11-22", "metrics": {...}},
      "comparison": {"start": "2026-10-01", "end": "2026-10-22", "metrics": {...}},
      "top_movers": [{"name": "VIP包厢台费", "metric": "table_fee", "area": "vip",
                      "current": 8200.0, "previous": 10400.0, "change_pct": -21.2}]
    }

``metrics`` holds numbers keyed as in ``FINANCE_METRICS`` (others are reported under their own
key); ``area_label`` and ``time_dimension_label`` are used when given. ``top_movers`` come in the
builder's ranking (``change_pct`` optional, computed from current/previous); without them the
analyst ranks the metrics by relative change. The insights: the headline (revenue against the
comparison period), the three biggest movers (``discount`` rising is a warning), the revenue
mix and the member share.
"""

from __future__ import annotations

from typing import Any

from zqyy_assets.core.llm.offline.reading import Prompt, find, num
from zqyy_assets.core.llm.offline.wording import SIGNIFICANT_PCT, Level, fmt, level_for, money_text, trend_word
from zqyy_assets.core.prompts.metrics import FINANCE_METRICS, FinanceMetric, pct_change
from zqyy_assets.core.vocabulary import AREA_LABELS, TIME_DIMENSION_LABELS

# Derived or duplicate figures left out when the analyst ranks movers itself.
_NOT_MOVERS = {"table_minutes", "member_share", "daily_avg_revenue", "active_days"}
_HEADLINE_KEYS = ("revenue", "total_revenue", "营业额", "income", "gmv")


def _numeric_metrics(block: Any) -> dict[str, float]:
    if not isinstance(block, dict):
        return {}
    metrics = block.get("metrics", block)
    if not isinstance(metrics, dict):
        return {}
    out = {}
    for key, value in metrics.items():
        parsed = num(value)
        if parsed is not None and key not in ("site_id", "start", "end"):
            out[str(key)] = parsed
    return out


def _label(key: str) -> FinanceMetric:
    return FINANCE_METRICS.get(key, FinanceMetric(key, "count"))


def finance_insights(data: Prompt) -> dict[str, Any]:
    """The app2 answer: the headline, the three biggest movers, the revenue mix, the member share."""
    time_dimension = str(find(data, "time_dimension") or "")
    area = str(find(data, "area") or "all")
    area_label = data.get("area_label") or AREA_LABELS.get(area, area)
    period_label = data.get("time_dimension_label") or TIME_DIMENSION_LABELS.get(time_dimension, "本期")
    scope = f"{area_label}{period_label}"
    current = _numeric_metrics(find(data, "period", "current", "本期"))
    previous = _numeric_metrics(find(data, "comparison", "previous", "compare", "对比期", "上期"))

    headline = next((k for k in _HEADLINE_KEYS if k in current), None) or next(iter(current), None)
    if headline is None:
        title = f"{scope}暂无可分析的营业数据"
        return {"insights": [_insight(title, "本期没有结算数据，无法与对比期比较。请确认门店数据已同步后再查看。")]}
    insights = [_headline_insight(scope, headline, current, previous)]
    insights += [_mover_insight(mover) for mover in _movers(data, current, previous, exclude=headline)[:3]]
    insights += [i for i in (_mix_insight(current), _member_share_insight(current, previous)) if i]
    return {"insights": insights}


def _insight(
    title: str, content: str, metric: str | None = None, change_pct: float | None = None, level: Level = "info"
) -> dict[str, Any]:
    return {"title": title, "content": content, "metric": metric, "change_pct": change_pct, "level": level}


def _headline_insight(
    scope: str, headline: str, current: dict[str, float], previous: dict[str, float]
) -> dict[str, Any]:
    label, unit, rise_is_bad = _label(headline)
    cur = current[headline]
    if headline not in previous:
        return _insight(
            f"{scope}{label} {fmt(cur, unit)}", f"本期{label} {fmt(cur, unit)}，对比期没有可比数据。", headline
        )
    prev = previous[headline]
    change = pct_change(cur, prev)
    delta = cur - prev
    sign = "+" if delta >= 0 else "-"
    return _insight(
        f"{scope}{label}{trend_word(change)}",
        f"本期{label} {fmt(cur, unit)}，对比期 {fmt(prev, unit)}，变化 {sign}{fmt(abs(delta), unit)}。",
        headline,
        change,
        level_for(change, rise_is_bad),
    )


def _mover_insight(mover: dict[str, Any]) -> dict[str, Any]:
    metric, name, change = mover["metric"], mover["name"], mover["change_pct"]
    _, unit, rise_is_bad = _label(metric) if metric in FINANCE_METRICS else FinanceMetric(name, "money")
    advice = _mover_advice(metric, change, rise_is_bad)
    return _insight(
        f"{name}{trend_word(change)}",
        f"{name}本期 {fmt(mover['current'], unit)}，对比期 {fmt(mover['previous'], unit)}。{advice}",
        metric,
        change,
        level_for(change, rise_is_bad),
    )


def _mix_insight(current: dict[str, float]) -> dict[str, Any] | None:
    """What the revenue is made of (table fees, assistant fees, goods), when the prompt says."""
    revenue = current.get("revenue")
    parts = [(k, current[k]) for k in ("table_fee", "assistant_fee", "goods_amount") if k in current]
    if not (revenue and revenue > 0 and parts):
        return None
    mix = "，".join(f"{FINANCE_METRICS[k].label}占 {v / revenue * 100:.1f}%" for k, v in parts)
    top = max(parts, key=lambda kv: kv[1])
    return _insight(
        f"营收结构以{FINANCE_METRICS[top[0]].label}为主", f"本期营业额 {money_text(revenue)} 中，{mix}。", "revenue_mix"
    )


def _member_share_insight(current: dict[str, float], previous: dict[str, float]) -> dict[str, Any] | None:
    """The members' share of revenue (given, or member revenue over revenue) and how it moved, in points."""
    share, prev_share = _member_share(current), _member_share(previous)
    if share is None:
        return None
    share_pct = share * 100 if share <= 1 else share
    text = f"会员消费占营业额 {share_pct:.1f}%"
    change = None
    if prev_share is not None:
        prev_pct = prev_share * 100 if prev_share <= 1 else prev_share
        change = round(share_pct - prev_pct, 1)
        text += f"，较对比期{'提高' if change >= 0 else '降低'} {abs(change):.1f} 个百分点"
    advice = "会员是营收主力，维护好储值会员的到店频次。" if share_pct >= 50 else "散客占比较高，可引导散客办卡储值。"
    level: Level = "warning" if change is not None and change <= -SIGNIFICANT_PCT else "info"
    return _insight("会员贡献", f"{text}。{advice}", "member_share", change, level)


def _member_share(metrics: dict[str, float]) -> float | None:
    share = metrics.get("member_share")
    if share is None and metrics.get("revenue") and "member_revenue" in metrics:
        share = metrics["member_revenue"] / metrics["revenue"]
    return share


def _movers(
    data: Prompt, current: dict[str, float], previous: dict[str, float], *, exclude: str
) -> list[dict[str, Any]]:
    """The prompt's own top movers when it names them, else the metrics ranked by relative change."""
    given = find(data, "top_movers", "movers")
    movers: list[dict[str, Any]] = []
    if isinstance(given, list):
        for item in given:
            if not isinstance(item, dict):
                continue
            cur = num(item.get("current", item.get("value")))
            prev = num(item.get("previous", item.get("compare", item.get("baseline"))))
            if cur is None or prev is None:
                continue
            metric = str(item.get("metric") or item.get("key") or "")
            name = str(item.get("name") or item.get("label") or _label(metric)[0] or metric)
            change = num(item.get("change_pct"))
            movers.append(
                {
                    "name": name,
                    "metric": metric or name,
                    "current": cur,
                    "previous": prev,
                    "change_pct": round(change, 1) if change is not None else pct_change(cur, prev),
                }
            )
    if movers:
        return movers  # the prompt builder's ranking (by absolute change) stands
    for key in current:
        if key == exclude or key not in previous or key in _NOT_MOVERS:
            continue
        movers.append(
            {
                "name": _label(key)[0],
                "metric": key,
                "current": current[key],
                "previous": previous[key],
                "change_pct": pct_change(current[key], previous[key]),
            }
        )
    # Ranked by relative change; a figure new since the comparison period (no base) comes first.
    movers.sort(key=lambda m: (-(abs(m["change_pct"]) if m["change_pct"] is not None else 1e9), m["name"]))
    return movers


def _mover_advice(metric: str, change: float | None, rise_is_bad: bool) -> str:
    if change is None:
        return "对比期为零，属于新增项目。"
    if abs(change) < SIGNIFICANT_PCT:
        return "变化不大，保持关注。"
    if metric == "discount":
        return "优惠力度加大，留意毛利是否被侵蚀。" if change > 0 else "优惠收紧，留意客流是否随之下降。"
    if metric in ("assistant_fee",):
        return "助教服务需求走强，可优化排班。" if change > 0 else "助教服务减少，检查排班和助教推荐。"
    if metric in ("goods_amount",):
        return "酒水商品带动明显。" if change > 0 else "酒水商品销售走弱，可搭配套餐促销。"
    if metric in ("recharge_amount", "recharge_count"):
        return "储值意愿增强。" if change > 0 else "储值放缓，可策划储值活动。"
    good = (change > 0) != rise_is_bad
    return "表现向好，总结经验并保持。" if good else "明显走弱，建议排查原因。"
