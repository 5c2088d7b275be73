"""The offline analysts for an assistant x member: app4_analysis (the relationship) and
app5_tactics (how to open the next conversation).

Reads ``dws.assistant_member`` names: ``services``, ``minutes``, ``fees``,
``first_service_at``, ``last_service_at``, ``days_since_last_service``, ``assistant_name``,
plus the member figures (see :mod:`.member`); app5 also reads ``app4_result`` (App4's answer)
for strengths and risks.
"""

from __future__ import annotations

from typing import Any, Literal

from zqyy_assets.core.llm.offline.member import MemberFigures
from zqyy_assets.core.llm.offline.reading import Prompt, find, find_num
from zqyy_assets.core.llm.offline.wording import money_text


class _Relation:
    """The pair's service history as found in the prompt."""

    def __init__(self, data: Prompt) -> None:
        self.services = find_num(data, "services", "service_count", "served_count")
        self.minutes = find_num(data, "minutes", "service_minutes", "total_minutes")
        self.fees = find_num(data, "fees", "service_fees", "assistant_fee")
        self.days_since = find_num(data, "days_since_last_service")
        self.assistant = find(data, "assistant_name") or "助教"

    def level(self) -> RelationshipLevel:
        services, minutes = self.services or 0, self.minutes or 0
        if services >= 10 or minutes >= 1200:
            return "strong"
        if services >= 4 or minutes >= 360:
            return "moderate"
        if services >= 1:
            return "weak"
        return "new"


RelationshipLevel = Literal["strong", "moderate", "weak", "new"]
_LEVEL_CN: dict[RelationshipLevel, str] = {"strong": "紧密", "moderate": "稳定", "weak": "尚浅", "new": "刚建立"}


def relationship(data: Prompt) -> dict[str, Any]:
    """The app4 answer: how close the pair is, with the strengths and risks behind it."""
    r, m = _Relation(data), MemberFigures(data)
    level = r.level()
    strengths: list[str] = []
    risks: list[str] = []
    if r.services:
        hours = f"，约 {r.minutes / 60:.1f} 小时" if r.minutes else ""
        strengths.append(f"累计服务 {r.services:.0f} 次{hours}")
    if r.fees:
        strengths.append(f"助教服务消费累计 {money_text(r.fees)}")
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


def tactics(data: Prompt) -> dict[str, Any]:
    """The app5 answer: an opening line, points to raise and what to avoid, from App4's analysis."""
    m = MemberFigures(data)
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
