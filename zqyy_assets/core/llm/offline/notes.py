"""The offline analyst for app6_note: clues picked out of a note's clauses by keyword.

Reads ``note_content`` (or ``note``/``content``/``notes``) and ``noted_by_name``.
"""

from __future__ import annotations

import re
from typing import Any

from zqyy_assets.core.llm.offline.reading import Prompt, find
from zqyy_assets.core.llm.offline.wording import Clue, clue

# (category, emoji, words): the first clause holding one of the words becomes that category's clue.
_NOTE_KEYWORDS: list[tuple[str, str, tuple[str, ...]]] = [
    ("重要反馈", "⚠️", ("不满", "投诉", "嫌", "太贵", "贵了", "有点贵", "偏贵", "差", "吵", "慢", "意见", "不舒服")),
    ("客户基础", "🎂", ("生日", "工作", "职业", "上班", "住在", "孩子", "结婚", "老板", "学生")),
    ("玩法偏好", "🎱", ("喜欢", "偏好", "爱打", "斯诺克", "中式", "九球", "八球", "包厢", "麻将", "唱歌", "球杆")),
    ("消费习惯", "🕘", ("周末", "晚上", "下午", "经常", "每周", "通宵", "下班")),
    ("促销偏好", "🎁", ("优惠", "折扣", "充值", "储值", "活动", "套餐", "会员卡")),
    ("社交关系", "🤝", ("朋友", "同事", "带", "一起", "女朋友", "男朋友", "老婆", "老公", "家人")),
]


def note_analysis(data: Prompt) -> dict[str, Any]:
    """The app6 answer: a score for how informative the note is, a summary and its clues."""
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
    clues: list[Clue] = []
    for category, emoji, words in _NOTE_KEYWORDS:
        hit = next((s for s in clauses if s not in used and any(w in s for w in words)), None)
        if hit:
            used.add(hit)
            summary = hit if len(hit) <= 30 else hit[:29] + "…"
            source = f"来自{author}的备注" if author else "来自助教备注"
            clues.append(clue(category, emoji, summary, f"{source}：{hit}"))
    score = min(100, 20 + 12 * len(clues) + min(len(note) // 5, 20))
    if clues:
        summary = f"备注涉及{'、'.join(c['category'] for c in clues)}，共提炼 {len(clues)} 条线索。"
    else:
        summary = "备注内容较笼统，未提炼出明确线索。"
    return {"score": score, "summary": summary, "clues": clues}
