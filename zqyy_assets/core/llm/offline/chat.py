"""The offline reply for app1_chat: the user's question, then the gist of the cached answers the
page context carries (a finance board's insights, a member's clues and analysis), saying plainly
that it comes from the offline analyst; with no such answers, what it can do and where to ask.

The prompt is read back with :func:`zqyy_assets.core.prompts.chat.parse_chat_prompt` (the API
wrote it), so only the question is quoted, never the page-context block before it.
"""

from __future__ import annotations

import re
from typing import Any

from zqyy_assets.core.apps import APP_NAMES, get_app
from zqyy_assets.core.prompts.chat import parse_chat_prompt

LABEL = "（离线分析助手，未连接大模型）"
KEY_HINT = "配置大模型密钥后，可获得针对您问题的完整回答。"
REPLY_MAX_CHARS = 600
QUESTION_MAX_CHARS = 60
LINE_MAX_CHARS = 70
ITEMS_PER_ANSWER = 3
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;])")


def chat_reply(prompt: str | dict[str, Any]) -> str:
    """The offline analyst's reply, labelled, with the hint that a model key answers fuller."""
    return f"{LABEL}{chat_answer(prompt)}{KEY_HINT}"


def chat_answer(prompt: str | dict[str, Any]) -> str:
    """The reply's body: the question quoted, then the page's answers' gist or the guidance."""
    text = prompt if isinstance(prompt, str) else str(prompt.get("text") or prompt.get("question") or "")
    parsed = parse_chat_prompt(text)
    reply = f"您的问题：「{_cut(parsed.question, QUESTION_MAX_CHARS)}」\n" if parsed.question else ""
    room = REPLY_MAX_CHARS - len(LABEL) - len(KEY_HINT) - len(reply)
    gist = _gist(parsed.answers, room - len(_GIST_INTRO))
    if gist:
        return reply + _GIST_INTRO + gist
    return reply + _GUIDANCE


_GIST_INTRO = "我目前只能转述本页已生成的分析，要点如下：\n"
_GUIDANCE = (
    "我目前没有连接大模型，只能转述已生成的分析结果：从财务看板打开对话，我会概括该看板的财务洞察；"
    "从会员详情页打开，我会概括该会员的线索和客户分析。请先打开相应的看板或会员页面再提问。"
)


def _gist(answers: dict[str, Any], room: int) -> str:
    """Per cached answer, its title and first items, while they fit in ``room`` characters."""
    out = ""
    for key, result in answers.items():
        lines = _answer_lines(result)
        if not lines:
            continue
        app = str(key).partition(":")[0]
        block = f"【{get_app(app).title if app in APP_NAMES else '分析'}】\n"
        for n, line in enumerate(lines[:ITEMS_PER_ANSWER], start=1):
            block += f"{n}. {_cut(line, LINE_MAX_CHARS)}\n"
        if len(out) + len(block) > room:
            break
        out += block
    return out


def _answer_lines(result: Any) -> list[str]:
    """The lines that say what an answer holds: insights, clues, a summary, an opening line."""
    if not isinstance(result, dict):
        return []
    lines: list[str] = []
    for item in _dicts(result.get("insights")):
        title, content = _text(item.get("title")), _first_sentence(_text(item.get("content")))
        lines.append(f"{title}：{content}" if title and content else title or content)
    for item in _dicts(result.get("clues")):
        category, summary = _text(item.get("category")), _text(item.get("summary"))
        lines.append(f"{category}：{summary}" if category and summary else summary)
    summary = _first_sentence(_text(result.get("summary")))
    segment = _text(result.get("segment"))
    if summary:
        lines.append(f"{segment}：{summary}" if segment else summary)
    if opening := _text(result.get("opening_line")):
        lines.append(f"开场白：{opening}")
    for suggestion in [_text(s) for s in result.get("suggestions") or [] if isinstance(s, str)][:1]:
        lines.append(f"建议：{suggestion}")
    return [line for line in lines if line]


def _dicts(value: Any) -> list[dict]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _first_sentence(text: str) -> str:
    return next((s.strip() for s in _SENTENCE_END.split(text) if s.strip()), "")


def _cut(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
