"""How the offline analyst reads a prompt: as a dict, keys looked up anywhere in the nesting
(breadth first, so ``{"member": {"recency_days": 3}}`` and ``{"recency_days": 3}`` read alike),
numbers parsed from whatever form they come in ("50,000.00", "¥1,200", Decimal).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

# A prompt as the analysts read it: the builder's JSON object.
Prompt = dict[str, Any]


def load_prompt(prompt: str | dict[str, Any] | list[Any]) -> Prompt:
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


def walk(data: Any) -> Iterable[tuple[str, Any]]:
    """(key, value) pairs, breadth first, so a shallow key wins over a nested one."""
    queue: list[Any] = [data]
    while queue:
        node = queue.pop(0)
        if isinstance(node, dict):
            for key, value in node.items():
                yield str(key), value
            queue.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            queue.extend(v for v in node if isinstance(v, (dict, list)))


def find(data: Any, *keys: str) -> Any:
    """The first non-empty value under any of the keys (case-insensitive), else None."""
    wanted = {k.lower() for k in keys}
    for key, value in walk(data):
        if key.lower() in wanted and value not in (None, "", [], {}):
            return value
    return None


def num(value: Any) -> float | None:
    """A number from an int, float, Decimal or text like \"¥1,200元\"; None when it is none."""
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
    """The first value under any of the keys that reads as a number."""
    wanted = {k.lower() for k in keys}
    for key, value in walk(data):
        if key.lower() in wanted:
            parsed = num(value)
            if parsed is not None:
                return parsed
    return None
