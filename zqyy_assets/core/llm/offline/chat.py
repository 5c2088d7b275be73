"""The offline reply for app1_chat: says plainly that it comes from the offline analyst."""

from __future__ import annotations

from typing import Any

from zqyy_assets.core.llm.offline.reading import find, load_prompt, num, walk


def chat_reply(prompt: str | dict[str, Any]) -> str:
    """A reply naming the question and up to three figures the prompt holds."""
    data = load_prompt(prompt)
    question = str(find(data, "question", "message", "text") or "").strip()
    figures = [(k, v) for k, v in walk(data) if num(v) is not None and not isinstance(v, bool)][:3]
    reply = "（离线分析助手，未连接大模型）"
    if question:
        short = question if len(question) <= 40 else question[:39] + "…"
        reply += f"收到您的问题：「{short}」。"
    if figures:
        reply += "当前可参考的数据：" + "，".join(f"{k} = {v}" for k, v in figures) + "。"
    reply += "联网后可获得完整的智能回答。"
    return reply
