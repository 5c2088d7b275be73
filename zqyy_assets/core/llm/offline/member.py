"""The offline analysts for a member: app3_clue (clues), app7_customer (segment and suggestions)
and app8_consolidation (merged clues).

Member figures carry ``dws.member_profile`` names: ``recency_days``, ``visits_30d``,
``visits_90d``, ``visits_180d``, ``spend_30d``, ``spend_90d``, ``spend_180d``,
``spend_prev_30d``, ``spend_trend`` (up/down/flat/new/inactive), ``recharge_180d``,
``favourite_area``, ``favourite_time_slot``, ``favourite_assistant_id``, optionally
``member_name``/``name``, ``level``, ``balance``. App7 also reads ``clues`` (e.g. the member's
App8 clues) to ground its suggestions. App8 reads ``app3_clues`` and ``app6_clues``; with
neither, the member figures are read as for app3 and the clues are marked
``providers: ["offline"]``.
"""

from __future__ import annotations

from typing import Any

from zqyy_assets.core.llm.offline.reading import Prompt, find, find_num
from zqyy_assets.core.llm.offline.wording import Clue, clue, money_text, trend_word
from zqyy_assets.core.prompts.metrics import pct_change
from zqyy_assets.core.vocabulary import AREA_LABELS


class MemberFigures:
    """The member's figures as found in the prompt; a figure it lacks is None, never invented."""

    def __init__(self, data: Prompt) -> None:
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


def member_clues(data: Prompt) -> list[Clue]:
    """The app3 clues: one per kind of figure the prompt has (visits, spend, area, slot, ...)."""
    m = MemberFigures(data)
    clues: list[Clue] = []
    if m.name or m.level:
        base = "，".join(x for x in (f"姓名 {m.name}" if m.name else "", f"等级 {m.level}" if m.level else "") if x)
        clues.append(clue("客户基础", "👤", base, f"{m.who}的基础档案：{base}。"))
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
        clues.append(clue("消费习惯", "📅", summary, f"{summary}；{cadence}。"))
    spend, window = (m.spend_30, "近 30 天") if m.spend_30 is not None else (m.spend_90, "近 90 天")
    if spend is not None:
        summary = f"{window}消费 {money_text(spend)}"
        detail = summary
        if m.spend_30 is not None and m.spend_prev_30:
            change = pct_change(m.spend_30, m.spend_prev_30)
            summary += f"，较前 30 天{trend_word(change)}"
            detail = f"{summary}（前 30 天 {money_text(m.spend_prev_30)}）"
        if m.spend_180 is not None:
            detail += f"；近半年累计 {money_text(m.spend_180)}"
        clues.append(clue("消费习惯", "💰", summary, detail + "。"))
    if m.area:
        clues.append(
            clue("玩法偏好", "🎱", f"偏好在{m.area}消费", f"{m.who}的结算多发生在{m.area}，可优先为其预留该区域。")
        )
    if m.slot:
        clues.append(
            clue("消费习惯", "🕘", f"常在{m.slot}到店", f"{m.who}的到店时间集中在{m.slot}，邀约宜选这个时段。")
        )
    if m.recharge:
        clues.append(
            clue(
                "促销偏好",
                "💳",
                f"近半年储值 {money_text(m.recharge)}",
                f"{m.who}近半年储值 {money_text(m.recharge)}，对储值类优惠有响应。",
            )
        )
    elif m.balance:
        clues.append(
            clue(
                "促销偏好",
                "💳",
                f"卡内余额 {money_text(m.balance)}",
                f"{m.who}卡内尚有余额 {money_text(m.balance)}，可提醒使用。",
            )
        )
    if m.assistant:
        clues.append(
            clue(
                "社交关系", "🤝", f"常点助教 {m.assistant}", f"{m.who}多次选择助教 {m.assistant}，关系可由该助教维护。"
            )
        )
    if not clues:
        clues.append(clue("客户基础", "📝", "暂无足够消费数据", "该会员近期消费记录不足，暂时无法提炼线索。"))
    return clues


def customer(data: Prompt) -> dict[str, Any]:
    """The app7 answer: the member's segment, value and churn risk, and what to do about them."""
    m = MemberFigures(data)
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
        facts.append(f"近 90 天消费 {money_text(m.spend_90)}")
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
        for item in clues[:2]:
            if isinstance(item, dict) and item.get("summary"):
                suggestions.append(f"结合线索：{item['summary']}")
    if not suggestions:
        suggestions.append("保持日常问候，观察后续到店情况")
    return {
        "segment": segment,
        "summary": summary,
        "value_level": value,
        "churn_risk": churn,
        "suggestions": suggestions,
    }


def consolidate(data: Prompt) -> dict[str, Any]:
    """The app8 answer: App3's and App6's clues merged by (category, summary), sources named."""
    merged: dict[tuple[str, str], Clue] = {}
    for provider, keys in (("app3", ("app3_clues", "consumption_clues")), ("app6", ("app6_clues", "note_clues"))):
        clues = find(data, *keys)
        if isinstance(clues, dict):
            clues = clues.get("clues", [])
        for item in clues if isinstance(clues, list) else []:
            if not isinstance(item, dict) or not item.get("summary"):
                continue
            key = (str(item.get("category") or "客户基础"), str(item["summary"]).strip())
            entry = merged.setdefault(
                key,
                {
                    "category": key[0],
                    "emoji": str(item.get("emoji") or ""),
                    "summary": key[1],
                    "detail": str(item.get("detail") or ""),
                    "providers": [],
                },
            )
            if provider not in entry["providers"]:
                entry["providers"].append(provider)
            if len(str(item.get("detail") or "")) > len(entry["detail"]):
                entry["detail"] = str(item["detail"])
    if merged:
        return {"clues": list(merged.values())}
    return {"clues": [{**c, "providers": ["offline"]} for c in member_clues(data)]}
