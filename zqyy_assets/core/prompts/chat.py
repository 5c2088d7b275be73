"""The chat app's prompt (app1): text, written here and read back here (the one home of its format).

The API writes it (``api/services/chat.py``) from the dialogue and the cached answers of the page
the chat was opened from; the offline analyst and the fake DashScope server read it back with
:func:`parse_chat_prompt`. Its layout, each part present only when there is something to say::

    [页面上下文: board-finance]
    {"app2_finance:this_month__all": {...}, ...}     <- one line of JSON, whole answers only

    [历史对话]
    用户: ...
    AI: ...

    [当前问题]
    本月营业额怎么样？

A lone question (no earlier turns) goes as is, without the ``[当前问题]`` header.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

PAGE_TEXT_MAX_CHARS = 6000
_PAGE_HEADER = re.compile(r"^\[页面上下文: ([^\]\n]*)\]\n(.*?)(?:\n\n|$)", re.DOTALL)
_HISTORY = "[历史对话]"
_QUESTION = "[当前问题]"


def page_block(source_page: str, answers: dict[str, Any]) -> str | None:
    """The page's cached answers (keyed ``app:target``) as the prompt's first block, or None.

    Whole answers only, in the given order, while the JSON fits ``PAGE_TEXT_MAX_CHARS``; when even
    the first does not fit, it is cut (then no longer JSON, so a reader finds no answers in it).
    """
    if not answers:
        return None
    kept: dict[str, Any] = {}
    for key, value in answers.items():
        if len(_dump({**kept, key: value})) > PAGE_TEXT_MAX_CHARS:
            break
        kept[key] = value
    body = _dump(kept) if kept else _dump(answers)[:PAGE_TEXT_MAX_CHARS] + "…"
    return f"[页面上下文: {source_page}]\n{body}"


def chat_prompt(turns: list[dict], page_text: str | None = None) -> str:
    """The prompt from the dialogue (``role``/``content``, oldest first, the question last)."""
    if not turns:
        return page_text or ""
    question = turns[-1]["content"]
    earlier = [f"{'用户' if t['role'] == 'user' else 'AI'}: {t['content']}" for t in turns[:-1]]
    prompt = f"{_HISTORY}\n{chr(10).join(earlier)}\n\n{_QUESTION}\n{question}" if earlier else question
    return f"{page_text}\n\n{prompt}" if page_text else prompt


@dataclass(frozen=True)
class ChatPrompt:
    """What a chat prompt says: the question, the page it came from and the page's answers."""

    question: str
    source_page: str | None = None
    answers: dict[str, Any] = field(default_factory=dict)


def parse_chat_prompt(text: str) -> ChatPrompt:
    """The parts of a prompt :func:`chat_prompt` wrote (any other text is all question)."""
    source_page, answers = None, {}
    header = _PAGE_HEADER.match(text)
    if header is not None:
        source_page = header.group(1)
        try:
            decoded = json.loads(header.group(2))
        except ValueError:
            decoded = None
        answers = decoded if isinstance(decoded, dict) else {}
        text = text[header.end() :]
    if text.startswith(_HISTORY + "\n") and f"\n\n{_QUESTION}\n" in text:
        text = text.rpartition(f"\n\n{_QUESTION}\n")[2]
    return ChatPrompt(question=text.strip(), source_page=source_page, answers=answers)


def _dump(answers: dict[str, Any]) -> str:
    return json.dumps(answers, ensure_ascii=False, default=str)
