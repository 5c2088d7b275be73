"""A short markdown preview of a cached answer, for the on-call engineer (Dagster's metadata).

Built from the answer's JSON as it is cached (``biz.ai_cache.result_json``), per app: App2's
first insights, a member's clues (App3, App6, App8), App4's relationship, App5's opening line,
App7's segment. At most :data:`PREVIEW_MAX_CHARS` characters whatever the model wrote; a field
missing or of another type is left out, never an error (the answer validated when it was cached).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

PREVIEW_MAX_CHARS = 600
ITEMS = 3  # insights / clues / points shown
_LINE_MAX_CHARS = 160


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())  # one line: the model's newlines would break the list
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(value: Any) -> str:
    return _clip(value, _LINE_MAX_CHARS) if isinstance(value, str) and value.strip() else ""


def _items(result: dict[str, Any], key: str) -> list[Any]:
    value = result.get(key)
    return value if isinstance(value, list) else []


def _more(result: dict[str, Any], key: str) -> Iterator[str]:
    extra = len(_items(result, key)) - ITEMS
    if extra > 0:
        yield f"- … {extra} more"


def _insights(result: dict[str, Any]) -> Iterator[str]:
    for item in _items(result, "insights")[:ITEMS]:
        if not isinstance(item, dict):
            continue
        change = item.get("change_pct")
        tag = f" ({change:+.1f} %)" if isinstance(change, (int, float)) and not isinstance(change, bool) else ""
        yield f"- **{_text(item.get('title'))}**{tag}: {_text(item.get('content'))}"
    yield from _more(result, "insights")


def _clues(result: dict[str, Any]) -> Iterator[str]:
    for item in _items(result, "clues")[:ITEMS]:
        if isinstance(item, dict):
            emoji = f"{item['emoji']} " if isinstance(item.get("emoji"), str) and item["emoji"] else ""
            yield f"- {emoji}**{_text(item.get('category'))}**: {_text(item.get('summary'))}"
    yield from _more(result, "clues")


def _points(result: dict[str, Any], key: str, label: str) -> Iterator[str]:
    points = [_text(p) for p in _items(result, key)[:ITEMS] if _text(p)]
    if points:
        yield f"{label}: " + "; ".join(points)


def _lines(app_name: str, result: dict[str, Any]) -> Iterator[str]:
    summary = _text(result.get("summary"))
    if app_name.startswith("app2"):
        yield from _insights(result)
    elif app_name == "app5_tactics":
        yield f"> {_text(result.get('opening_line'))}"
        yield from _points(result, "talking_points", "Points")
    elif app_name == "app4_analysis":
        yield f"**{_text(result.get('relationship_level'))}**: {summary}"
        yield from _points(result, "strengths", "Strengths")
        yield from _points(result, "risks", "Risks")
    elif app_name == "app7_customer":
        grades = f"value {_text(result.get('value_level'))}, churn risk {_text(result.get('churn_risk'))}"
        yield f"**{_text(result.get('segment'))}** ({grades}): {summary}"
        yield from _points(result, "suggestions", "Suggestions")
    else:  # the clue apps: App3, App6 (a score and a summary first), App8
        if "score" in result:
            yield f"**score {result['score']}**: {summary}"
        yield from _clues(result)


def answer_preview(app_name: str, result: Any) -> str:
    """The preview of one answer: a few markdown lines, at most ``PREVIEW_MAX_CHARS`` characters."""
    if not isinstance(result, dict):
        return ""
    return bounded("\n".join(line for line in _lines(app_name, result) if line.strip(" >-*:")))


def bounded(markdown: str, limit: int = PREVIEW_MAX_CHARS) -> str:
    """``markdown`` cut to ``limit`` characters at a line's end when it can be, else mid-line with "…"."""
    if len(markdown) <= limit:
        return markdown
    cut = markdown.rfind("\n", 0, limit - 1)
    if cut > limit // 2:
        return markdown[:cut] + "\n…"
    return markdown[: limit - 1] + "…"
