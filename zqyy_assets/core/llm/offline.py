"""The offline provider: a deterministic analyst that computes each app's answer from the
figures in its prompt, with no key and no network. Its answers are labelled
``"_provider": "offline"`` (and ``AppAnswer.provider == "offline"``), cost zero tokens, and are
valid for the app's schema in ``zqyy_assets.core.answer_schemas``. The fake DashScope server uses
it too, so its answers are realistic and schema-valid.

The same prompt always gives the same answer (no clock, no randomness). The prompt is the JSON
the prompt builders produce (a ``dict`` or its JSON text); keys are looked up anywhere in the
nesting, so ``{"member": {"recency_days": 3}}`` and ``{"recency_days": 3}`` read alike. Missing
figures are skipped, never invented; with nothing usable the answer says the data is too thin.

Prompt shapes it reads
----------------------

**app2_finance / app2a_finance_area** (one site, one time dimension, one area)::

    {
      "site": {"site_id": 1, "name": "星辰台球"},
      "time_dimension": "this_month",            # this_month, last_month, this_week, ...
      "area": "all",                             # all, hall, hallA..C, vip, snooker, mahjong, ktv
      "period":     {"start": "2026-11-01", "end": "2026-11-22", "metrics": {...}},
      "comparison": {"start": "2026-10-01", "end": "2026-10-22", "metrics": {...}},
      "top_movers": [{"name": "VIP包厢台费", "metric": "table_fee", "area": "vip",
                      "current": 8200.0, "previous": 10400.0, "change_pct": -21.2}]
    }

``metrics`` holds numbers keyed as in ``dws.finance_area_daily``: ``revenue``, ``table_fee``,
``assistant_fee``, ``goods_amount``, ``discount``, ``orders``, ``table_minutes``,
``table_hours``, ``member_revenue``, ``member_orders``, ``member_share``, ``recharge_amount``,
``recharge_count``, ``avg_order_value`` (others are reported under their own key);
``area_label`` and ``time_dimension_label`` are used when given. ``top_movers`` come in the
builder's ranking (``change_pct`` optional, computed from current/previous); without them the
analyst ranks the metrics by relative change. The insights: the headline (revenue against the
comparison period), the three biggest movers (``discount`` rising is a warning), the revenue
mix and the member share.

**app3_clue / app7_customer** (a member; ``dws.member_profile`` names): ``recency_days``,
``visits_30d``, ``visits_90d``, ``visits_180d``, ``spend_30d``, ``spend_90d``,
``spend_180d``, ``spend_prev_30d``, ``spend_trend`` (up/down/flat/new/inactive),
``recharge_180d``, ``favourite_area``, ``favourite_time_slot``, ``favourite_assistant_id``,
optionally ``member_name``/``name``, ``level``, ``balance``; app7 also reads ``clues``
(e.g. the member's App8 clues) to ground its suggestions.

**app4_analysis / app5_tactics** (an assistant x member; ``dws.assistant_member`` names):
``services``, ``minutes``, ``fees``, ``first_service_at``, ``last_service_at``,
``days_since_last_service``, ``assistant_name``, plus the member figures above; app5 also
reads ``app4_result`` (App4's answer) for strengths and risks.

**app6_note**: ``note_content`` (or ``note``/``content``/``notes``), ``noted_by_name``.

**app8_consolidation**: ``app3_clues`` and ``app6_clues`` (lists of clues); with neither, the
member figures are read as for app3 and the clues are marked ``providers: ["offline"]``.

**app1_chat**: free text; the reply says plainly that it comes from the offline analyst.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

OFFLINE_MODEL = "offline-analyst-1"
PROVIDER_TAG = {"_provider": "offline"}

TIME_DIMENSION_LABELS = {
    "this_month": "本月",
    "last_month": "上月",
    "this_week": "本周",
    "last_week": "上周",
    "this_quarter": "本季度",
    "last_quarter": "上季度",
    "last_3_months": "近三个月",
    "last_6_months": "近半年",
}
AREA_LABELS = {
    "all": "全店",
    "hall": "大厅",
    "hallA": "大厅A区",
    "hallB": "大厅B区",
    "hallC": "大厅C区",
    "vip": "VIP包厢",
    "snooker": "斯诺克区",
    "mahjong": "麻将房",
    "ktv": "KTV",
}
# label, unit ("money", "count", "hours", "minutes", "ratio"), True when a rise is bad news
METRICS: dict[str, tuple[str, str, bool]] = {
    "revenue": ("营业额", "money", False),
    "table_fee": ("台费", "money", False),
    "assistant_fee": ("助教费", "money", False),
    "goods_amount": ("商品及酒水", "money", False),
    "discount": ("优惠金额", "money", True),
    "orders": ("结算单数", "count", False),
    "table_minutes": ("开台时长", "minutes", False),
    "table_hours": ("开台时长", "hours", False),
    "member_revenue": ("会员消费", "money", False),
    "member_orders": ("会员结算单数", "count", False),
    "member_share": ("会员消费占比", "ratio", False),
    "recharge_amount": ("储值金额", "money", False),
    "recharge_count": ("储值笔数", "count", False),
    "avg_order_value": ("客单价", "money", False),
    "daily_avg_revenue": ("日均营业额", "money", False),
    "active_days": ("营业天数", "count", False),
}
# Derived or duplicate figures left out when the analyst ranks movers itself.
_NOT_MOVERS = {"table_minutes", "member_share", "daily_avg_revenue", "active_days"}
_HEADLINE_KEYS = ("revenue", "total_revenue", "营业额", "income", "gmv")
_SIGNIFICANT_PCT = 5.0


# --------------------------------------------------------------------------------- helpers


def load_prompt(prompt: str | dict | list) -> dict:
    """The prompt as a dict: JSON text parsed, a list wrapped as ``items``, prose kept as ``text``."""
    if isinstance(prompt, dict):
        return prompt
    if isinstance(prompt, list):
        return {"items": prompt}
    text = str(prompt)
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return {"text": text}
    if isinstance(data, dict):
        return data
    return {"items": data} if isinstance(data, list) else {"text": text}


def _walk(data: Any) -> Iterable[tuple[str, Any]]:
    """(key, value) pairs, breadth first, so a shallow key wins over a nested one."""
    queue = [data]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            for key, value in node.items():
                yield str(key), value
            queue.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            queue.extend(v for v in node if isinstance(v, (dict, list)))


def find(data: Any, *keys: str) -> Any:
    wanted = {k.lower() for k in keys}
    for key, value in _walk(data):
        if key.lower() in wanted and value not in (None, "", [], {}):
            return value
    return None


def num(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        cleaned = re.sub(r"[,\s¥￥元%]", "", value)
        try:
            return float(cleaned)
        except ValueError:
            return None
    try:
        return float(value)  # Decimal
    except (TypeError, ValueError):
        return None


def find_num(data: Any, *keys: str) -> float | None:
    wanted = {k.lower() for k in keys}
    for key, value in _walk(data):
        if key.lower() in wanted:
            parsed = num(value)
            if parsed is not None:
                return parsed
    return None


def _money(value: float) -> str:
    return f"¥{value:,.0f}" if abs(value - round(value)) < 0.005 else f"¥{value:,.2f}"


def _fmt(value: float, unit: str) -> str:
    if unit == "money":
        return _money(value)
    if unit == "ratio":
        return f"{value * 100:.1f}%" if value <= 1 else f"{value:.1f}%"
    if unit == "hours":
        return f"{value:,.1f} 小时"
    if unit == "minutes":
        return f"{value / 60:,.1f} 小时"
    return f"{value:,.0f}"


def _pct(current: float, previous: float) -> float | None:
    if previous == 0:
        return None
    return round((current - previous) / abs(previous) * 100, 1)


def _trend_word(change: float | None) -> str:
    if change is None:
        return "新增"
    if change > 0:
        return f"上升 {change:.1f}%"
    if change < 0:
        return f"下降 {abs(change):.1f}%"
    return "持平"


def _level_for(change: float | None, rise_is_bad: bool) -> str:
    if change is None or abs(change) < _SIGNIFICANT_PCT:
        return "info"
    good = (change > 0) != rise_is_bad
    return "positive" if good else "warning"


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


def _label(key: str) -> tuple[str, str, bool]:
    return METRICS.get(key, (key, "count", False))


def _clue(category: str, emoji: str, summary: str, detail: str) -> dict:
    return {"category": category, "emoji": emoji, "summary": summary, "detail": detail}


# ------------------------------------------------------------------------------ app2 / app2a


def finance_insights(data: dict) -> dict:
    time_dimension = str(find(data, "time_dimension") or "")
    area = str(find(data, "area") or "all")
    area_label = data.get("area_label") or AREA_LABELS.get(area, area)
    period_label = data.get("time_dimension_label") or TIME_DIMENSION_LABELS.get(time_dimension, "本期")
    scope = f"{area_label}{period_label}"
    period = find(data, "period", "current", "本期")
    comparison = find(data, "comparison", "previous", "compare", "对比期", "上期")
    current, previous = _numeric_metrics(period), _numeric_metrics(comparison)
    insights: list[dict] = []

    headline = next((k for k in _HEADLINE_KEYS if k in current), None) or next(iter(current), None)
    if headline is None:
        return {
            "insights": [
                {
                    "title": f"{scope}暂无可分析的营业数据",
                    "content": "本期没有结算数据，无法与对比期比较。请确认门店数据已同步后再查看。",
                    "metric": None,
                    "change_pct": None,
                    "level": "info",
                }
            ]
        }

    label, unit, rise_is_bad = _label(headline)
    cur = current[headline]
    if headline in previous:
        prev = previous[headline]
        change = _pct(cur, prev)
        delta = cur - prev
        sign = "+" if delta >= 0 else "-"
        insights.append(
            {
                "title": f"{scope}{label}{_trend_word(change)}",
                "content": f"本期{label} {_fmt(cur, unit)}，对比期 {_fmt(prev, unit)}，"
                f"变化 {sign}{_fmt(abs(delta), unit)}。",
                "metric": headline,
                "change_pct": change,
                "level": _level_for(change, rise_is_bad),
            }
        )
    else:
        insights.append(
            {
                "title": f"{scope}{label} {_fmt(cur, unit)}",
                "content": f"本期{label} {_fmt(cur, unit)}，对比期没有可比数据。",
                "metric": headline,
                "change_pct": None,
                "level": "info",
            }
        )

    movers = _movers(data, current, previous, exclude=headline)
    for mover in movers[:3]:
        m_label, m_unit, m_bad = (
            _label(mover["metric"]) if mover["metric"] in METRICS else (mover["name"], "money", False)
        )
        name = mover["name"]
        change = mover["change_pct"]
        advice = _mover_advice(mover["metric"], change, m_bad)
        insights.append(
            {
                "title": f"{name}{_trend_word(change)}",
                "content": f"{name}本期 {_fmt(mover['current'], m_unit)}，对比期 {_fmt(mover['previous'], m_unit)}。{advice}",
                "metric": mover["metric"],
                "change_pct": change,
                "level": _level_for(change, m_bad),
            }
        )

    revenue = current.get("revenue")
    parts = [(k, current[k]) for k in ("table_fee", "assistant_fee", "goods_amount") if k in current]
    if revenue and revenue > 0 and parts:
        mix = "，".join(f"{METRICS[k][0]}占 {v / revenue * 100:.1f}%" for k, v in parts)
        top = max(parts, key=lambda kv: kv[1])
        insights.append(
            {
                "title": f"营收结构以{METRICS[top[0]][0]}为主",
                "content": f"本期营业额 {_money(revenue)} 中，{mix}。",
                "metric": "revenue_mix",
                "change_pct": None,
                "level": "info",
            }
        )

    share = current.get("member_share")
    if share is None and revenue and "member_revenue" in current:
        share = current["member_revenue"] / revenue if revenue else None
    if share is not None:
        prev_share = previous.get("member_share")
        if prev_share is None and previous.get("revenue") and "member_revenue" in previous:
            prev_share = previous["member_revenue"] / previous["revenue"]
        share_pct = share * 100 if share <= 1 else share
        text = f"会员消费占营业额 {share_pct:.1f}%"
        change = None
        if prev_share is not None:
            prev_pct = prev_share * 100 if prev_share <= 1 else prev_share
            change = round(share_pct - prev_pct, 1)
            text += f"，较对比期{'提高' if change >= 0 else '降低'} {abs(change):.1f} 个百分点"
        advice = (
            "会员是营收主力，维护好储值会员的到店频次。" if share_pct >= 50 else "散客占比较高，可引导散客办卡储值。"
        )
        insights.append(
            {
                "title": "会员贡献",
                "content": f"{text}。{advice}",
                "metric": "member_share",
                "change_pct": change,
                "level": "warning" if change is not None and change <= -_SIGNIFICANT_PCT else "info",
            }
        )
    return {"insights": insights}


def _movers(data: dict, current: dict, previous: dict, *, exclude: str) -> list[dict]:
    given = find(data, "top_movers", "movers")
    movers: list[dict] = []
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
                    "change_pct": round(change, 1) if change is not None else _pct(cur, prev),
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
                "change_pct": _pct(current[key], previous[key]),
            }
        )
    # Ranked by relative change; a figure new since the comparison period (no base) comes first.
    movers.sort(key=lambda m: (-(abs(m["change_pct"]) if m["change_pct"] is not None else 1e9), m["name"]))
    return movers


def _mover_advice(metric: str, change: float | None, rise_is_bad: bool) -> str:
    if change is None:
        return "对比期为零，属于新增项目。"
    if abs(change) < _SIGNIFICANT_PCT:
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


# ----------------------------------------------------------------------------- member figures


class _Member:
    def __init__(self, data: dict) -> None:
        self.name = find(data, "member_name", "name", "nickname")
        self.level = find(data, "member_level", "level")
        self.recency = find_num(data, "recency_days", "days_since_last_visit")
        self.visits_30 = find_num(data, "visits_30d")
        self.visits_90 = find_num(data, "visits_90d", "visits", "visit_count")
        self.visits_180 = find_num(data, "visits_180d")
        self.spend_30 = find_num(data, "spend_30d")
        self.spend_prev_30 = find_num(data, "spend_prev_30d")
        self.spend_90 = find_num(data, "spend_90d", "total_spend", "spend")
        self.spend_180 = find_num(data, "spend_180d")
        self.trend = find(data, "spend_trend")
        self.recharge = find_num(data, "recharge_180d", "recharge_amount")
        self.balance = find_num(data, "balance", "stored_value_balance", "card_balance")
        area = find(data, "favourite_area", "favorite_area", "preferred_area")
        self.area = AREA_LABELS.get(str(area), str(area)) if area else None
        self.slot = find(data, "favourite_time_slot", "favorite_time_slot", "preferred_time_slot")
        self.assistant = find(data, "favourite_assistant_name", "favourite_assistant_id", "favorite_assistant_id")

    @property
    def who(self) -> str:
        return f"会员{self.name}" if self.name else "该会员"

    def has_figures(self) -> bool:
        return any(
            v is not None
            for v in (
                self.recency,
                self.visits_30,
                self.visits_90,
                self.spend_30,
                self.spend_90,
                self.area,
                self.slot,
                self.recharge,
            )
        )


def member_clues(data: dict) -> list[dict]:
    m = _Member(data)
    clues: list[dict] = []
    if m.name or m.level:
        base = "，".join(x for x in (f"姓名 {m.name}" if m.name else "", f"等级 {m.level}" if m.level else "") if x)
        clues.append(_clue("客户基础", "👤", base, f"{m.who}的基础档案：{base}。"))
    if m.recency is not None or m.visits_30 is not None:
        parts = []
        if m.visits_30 is not None:
            parts.append(f"近 30 天到店 {m.visits_30:.0f} 次")
        if m.visits_90 is not None:
            parts.append(f"近 90 天 {m.visits_90:.0f} 次")
        if m.recency is not None:
            parts.append(f"距上次到店 {m.recency:.0f} 天")
        summary = "，".join(parts)
        cadence = (
            "到店频繁，是稳定常客"
            if (m.visits_30 or 0) >= 4
            else ("已较长时间未到店，需要关注" if (m.recency or 0) >= 30 else "到店节奏一般")
        )
        clues.append(_clue("消费习惯", "📅", summary, f"{summary}；{cadence}。"))
    if m.spend_30 is not None or m.spend_90 is not None:
        spend = m.spend_30 if m.spend_30 is not None else m.spend_90
        window = "近 30 天" if m.spend_30 is not None else "近 90 天"
        summary = f"{window}消费 {_money(spend)}"
        detail = summary
        if m.spend_30 is not None and m.spend_prev_30:
            change = _pct(m.spend_30, m.spend_prev_30)
            summary += f"，较前 30 天{_trend_word(change)}"
            detail = f"{summary}（前 30 天 {_money(m.spend_prev_30)}）"
        if m.spend_180 is not None:
            detail += f"；近半年累计 {_money(m.spend_180)}"
        clues.append(_clue("消费习惯", "💰", summary, detail + "。"))
    if m.area:
        clues.append(
            _clue("玩法偏好", "🎱", f"偏好在{m.area}消费", f"{m.who}的结算多发生在{m.area}，可优先为其预留该区域。")
        )
    if m.slot:
        clues.append(
            _clue("消费习惯", "🕘", f"常在{m.slot}到店", f"{m.who}的到店时间集中在{m.slot}，邀约宜选这个时段。")
        )
    if m.recharge:
        clues.append(
            _clue(
                "促销偏好",
                "💳",
                f"近半年储值 {_money(m.recharge)}",
                f"{m.who}近半年储值 {_money(m.recharge)}，对储值类优惠有响应。",
            )
        )
    elif m.balance:
        clues.append(
            _clue(
                "促销偏好",
                "💳",
                f"卡内余额 {_money(m.balance)}",
                f"{m.who}卡内尚有余额 {_money(m.balance)}，可提醒使用。",
            )
        )
    if m.assistant:
        clues.append(
            _clue(
                "社交关系", "🤝", f"常点助教 {m.assistant}", f"{m.who}多次选择助教 {m.assistant}，关系可由该助教维护。"
            )
        )
    if not clues:
        clues.append(_clue("客户基础", "📝", "暂无足够消费数据", "该会员近期消费记录不足，暂时无法提炼线索。"))
    return clues


# --------------------------------------------------------------------------------------- app6

_NOTE_KEYWORDS: list[tuple[str, str, tuple[str, ...]]] = [
    ("重要反馈", "⚠️", ("不满", "投诉", "嫌", "太贵", "贵了", "有点贵", "偏贵", "差", "吵", "慢", "意见", "不舒服")),
    ("客户基础", "🎂", ("生日", "工作", "职业", "上班", "住在", "孩子", "结婚", "老板", "学生")),
    ("玩法偏好", "🎱", ("喜欢", "偏好", "爱打", "斯诺克", "中式", "九球", "八球", "包厢", "麻将", "唱歌", "球杆")),
    ("消费习惯", "🕘", ("周末", "晚上", "下午", "经常", "每周", "通宵", "下班")),
    ("促销偏好", "🎁", ("优惠", "折扣", "充值", "储值", "活动", "套餐", "会员卡")),
    ("社交关系", "🤝", ("朋友", "同事", "带", "一起", "女朋友", "男朋友", "老婆", "老公", "家人")),
]


def note_analysis(data: dict) -> dict:
    raw = find(data, "note_content", "note", "content", "notes", "text")
    if isinstance(raw, list):
        raw = "。".join(str(x.get("content", x) if isinstance(x, dict) else x) for x in raw)
    note = str(raw or "").strip()
    author = find(data, "noted_by_name", "author")
    if not note:
        return {"score": 0, "summary": "备注为空，没有可提炼的信息。", "clues": []}
    # Clauses, so one sentence about play and company yields two clues; each clause is used once.
    clauses = [s.strip() for s in re.split(r"[。！!？?；;，,\n]", note) if s.strip()]
    used: set[str] = set()
    clues: list[dict] = []
    for category, emoji, words in _NOTE_KEYWORDS:
        hit = next((s for s in clauses if s not in used and any(w in s for w in words)), None)
        if hit:
            used.add(hit)
            summary = hit if len(hit) <= 30 else hit[:29] + "…"
            source = f"来自{author}的备注" if author else "来自助教备注"
            clues.append(_clue(category, emoji, summary, f"{source}：{hit}"))
    score = min(100, 20 + 12 * len(clues) + min(len(note) // 5, 20))
    if clues:
        summary = f"备注涉及{'、'.join(c['category'] for c in clues)}，共提炼 {len(clues)} 条线索。"
    else:
        summary = "备注内容较笼统，未提炼出明确线索。"
    return {"score": score, "summary": summary, "clues": clues}


# --------------------------------------------------------------------------------------- app8


def consolidate(data: dict) -> dict:
    merged: dict[tuple[str, str], dict] = {}
    for provider, keys in (("app3", ("app3_clues", "consumption_clues")), ("app6", ("app6_clues", "note_clues"))):
        clues = find(data, *keys)
        if isinstance(clues, dict):
            clues = clues.get("clues", [])
        for clue in clues if isinstance(clues, list) else []:
            if not isinstance(clue, dict) or not clue.get("summary"):
                continue
            key = (str(clue.get("category") or "客户基础"), str(clue["summary"]).strip())
            entry = merged.setdefault(
                key,
                {
                    "category": key[0],
                    "emoji": str(clue.get("emoji") or ""),
                    "summary": key[1],
                    "detail": str(clue.get("detail") or ""),
                    "providers": [],
                },
            )
            if provider not in entry["providers"]:
                entry["providers"].append(provider)
            if len(str(clue.get("detail") or "")) > len(entry["detail"]):
                entry["detail"] = str(clue["detail"])
    if merged:
        return {"clues": list(merged.values())}
    return {"clues": [{**c, "providers": ["offline"]} for c in member_clues(data)]}


# ----------------------------------------------------------------------------------- app4 / app5


class _Relation:
    def __init__(self, data: dict) -> None:
        self.services = find_num(data, "services", "service_count", "served_count")
        self.minutes = find_num(data, "minutes", "service_minutes", "total_minutes")
        self.fees = find_num(data, "fees", "service_fees", "assistant_fee")
        self.days_since = find_num(data, "days_since_last_service")
        self.assistant = find(data, "assistant_name") or "助教"

    def level(self) -> str:
        services, minutes = self.services or 0, self.minutes or 0
        if services >= 10 or minutes >= 1200:
            return "strong"
        if services >= 4 or minutes >= 360:
            return "moderate"
        if services >= 1:
            return "weak"
        return "new"


_LEVEL_CN = {"strong": "紧密", "moderate": "稳定", "weak": "尚浅", "new": "刚建立"}


def relationship(data: dict) -> dict:
    r, m = _Relation(data), _Member(data)
    level = r.level()
    strengths: list[str] = []
    risks: list[str] = []
    if r.services:
        hours = f"，约 {r.minutes / 60:.1f} 小时" if r.minutes else ""
        strengths.append(f"累计服务 {r.services:.0f} 次{hours}")
    if r.fees:
        strengths.append(f"助教服务消费累计 {_money(r.fees)}")
    if m.area:
        strengths.append(f"会员偏好{m.area}，服务场景明确")
    if m.trend == "up":
        strengths.append("会员近期消费上升")
    if r.days_since is not None and r.days_since >= 30:
        risks.append(f"已 {r.days_since:.0f} 天没有再服务该会员")
    if m.recency is not None and m.recency >= 30:
        risks.append(f"会员已 {m.recency:.0f} 天未到店")
    if m.trend in ("down", "inactive"):
        risks.append("会员整体消费在下降")
    if level in ("weak", "new"):
        risks.append("服务次数少，关系还不牢固")
    summary = f"{r.assistant}与{m.who}的关系{_LEVEL_CN[level]}"
    if r.services:
        summary += f"（累计服务 {r.services:.0f} 次）"
    summary += "。" + ("建议保持定期联系。" if level in ("strong", "moderate") else "建议多创造服务机会加深了解。")
    return {"relationship_level": level, "summary": summary, "strengths": strengths, "risks": risks}


def tactics(data: dict) -> dict:
    m = _Member(data)
    app4 = find(data, "app4_result", "relationship_analysis") or {}
    if not isinstance(app4, dict):
        app4 = {}
    level = app4.get("relationship_level") or _Relation(data).level()
    slot = f"{m.slot}" if m.slot else "这周"
    area = m.area or "常用的台"
    if m.recency is not None and m.recency >= 14:
        opening = f"好久不见！最近忙吗？{slot}有空的话，我帮您留{area}。"
    elif level in ("strong", "moderate"):
        opening = f"上次打得怎么样？{slot}我都在，想练球随时叫我。"
    else:
        opening = f"您好，我是这里的助教，{slot}想打球的话可以提前跟我说，我帮您安排{area}。"
    points: list[str] = []
    if m.area:
        points.append(f"聊聊{m.area}的打球体验，问问是否需要提前订台")
    if m.slot:
        points.append(f"邀约放在会员常来的{m.slot}")
    if m.recharge or m.balance:
        points.append("提醒储值卡的权益和余额，不主动推新的储值")
    for strength in app4.get("strengths", [])[:2] if isinstance(app4.get("strengths"), list) else []:
        points.append(f"可以延续：{strength}")
    if not points:
        points.append("先问候近况，了解会员的打球习惯和偏好")
    avoid = ["避免一开口就推销充值或套餐"]
    for risk in app4.get("risks", [])[:2] if isinstance(app4.get("risks"), list) else []:
        avoid.append(f"留意：{risk}")
    if m.trend in ("down", "inactive"):
        avoid.append("不要追问为什么最近不来，语气轻松即可")
    return {"opening_line": opening, "talking_points": points, "avoid": avoid}


# --------------------------------------------------------------------------------------- app7


def customer(data: dict) -> dict:
    m = _Member(data)
    spend = m.spend_90 if m.spend_90 is not None else (m.spend_30 or 0) * 3
    value = "high" if spend >= 3000 else "medium" if spend >= 800 else "low"
    recency = m.recency
    churn = "low"
    if recency is not None and recency >= 30 or m.trend == "inactive":
        churn = "high"
    elif (recency is not None and recency >= 14) or m.trend == "down":
        churn = "medium"
    if m.trend == "new":
        segment = "新客"
    elif m.trend == "inactive":
        segment = "沉睡会员"
    elif value == "high" and churn == "high":
        segment = "高价值流失预警"
    elif churn == "high":
        segment = "流失预警会员"
    elif value == "high":
        segment = "高价值常客"
    else:
        segment = "潜力会员"
    facts = []
    if m.spend_90 is not None:
        facts.append(f"近 90 天消费 {_money(m.spend_90)}")
    if m.visits_90 is not None:
        facts.append(f"到店 {m.visits_90:.0f} 次")
    if recency is not None:
        facts.append(f"距上次到店 {recency:.0f} 天")
    grade_cn = {"high": "高", "medium": "中", "low": "低"}
    summary = (
        f"{m.who}属于{segment}："
        + ("，".join(facts) if facts else "消费数据较少")
        + f"；价值{grade_cn[value]}，流失风险{grade_cn[churn]}。"
    )
    suggestions: list[str] = []
    if churn == "high":
        suggestions.append("由熟悉的助教尽快做一次回访，了解未到店原因")
    elif churn == "medium":
        suggestions.append("近期发一次邀约，推荐会员常来时段")
    if value == "high":
        suggestions.append("提供专属服务（预留台位、生日关怀），维护高价值关系")
    if m.area:
        suggestions.append(f"邀约时优先推荐{m.area}")
    if m.recharge:
        suggestions.append("会员有储值习惯，可告知新的储值权益")
    clues = find(data, "clues")
    if isinstance(clues, list):
        for clue in clues[:2]:
            if isinstance(clue, dict) and clue.get("summary"):
                suggestions.append(f"结合线索：{clue['summary']}")
    if not suggestions:
        suggestions.append("保持日常问候，观察后续到店情况")
    return {
        "segment": segment,
        "summary": summary,
        "value_level": value,
        "churn_risk": churn,
        "suggestions": suggestions,
    }


# --------------------------------------------------------------------------------------- app1


def chat_reply(prompt: str | dict) -> str:
    data = load_prompt(prompt)
    question = str(find(data, "question", "message", "text") or "").strip()
    figures = [(k, v) for k, v in _walk(data) if num(v) is not None and not isinstance(v, bool)][:3]
    reply = "（离线分析助手，未连接大模型）"
    if question:
        short = question if len(question) <= 40 else question[:39] + "…"
        reply += f"收到您的问题：「{short}」。"
    if figures:
        reply += "当前可参考的数据：" + "，".join(f"{k} = {v}" for k, v in figures) + "。"
    reply += "联网后可获得完整的智能回答。"
    return reply


# ------------------------------------------------------------------------------------ dispatch

_ANALYSTS = {
    "app2_finance": finance_insights,
    "app2a_finance_area": finance_insights,
    "app3_clue": lambda d: {"clues": member_clues(d)},
    "app4_analysis": relationship,
    "app5_tactics": tactics,
    "app6_note": note_analysis,
    "app7_customer": customer,
    "app8_consolidation": consolidate,
    "app1_chat": lambda d: {"text": chat_reply(d)},
}


def analyse(app_name: str, prompt: str | dict | list) -> dict:
    """The app's answer computed from the prompt's figures, labelled ``_provider: offline``."""
    try:
        analyst = _ANALYSTS[app_name]
    except KeyError:
        raise ValueError(f"no offline analyst for app {app_name!r}") from None
    return {**analyst(load_prompt(prompt)), **PROVIDER_TAG}
