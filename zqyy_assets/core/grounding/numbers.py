"""The numbers a Chinese answer cites, each with the value it states and the rounding it shows.

``cited_numbers(text)`` finds every figure written with Arabic digits:

- amounts: ``¥910,792.83``, ``￥1,200``, ``1200元``, ``12.3万``, ``1.2亿`` (万 / 亿 / 千 scale the value);
- percentages: ``35%``, ``-12.5％``; percentage points: ``3.5个百分点`` (also ``百分点``);
- multiples: ``1.5倍``; counts and other quantities: ``12人``, ``8次``, ``30 单``, ``6.5 小时``.

A figure's tolerance is half a unit of its last shown digit, times its scale: ``12.3万`` is
123,000 ± 500, ``35%`` is 35 ± 0.5, ``¥910,792.83`` is ± 0.005. Signs are not part of the check
(``下降 12.5%`` and ``-12.5%`` state the same change), so values are kept as magnitudes.

Not figures, and left alone: dates and clock times (``2026-11-01``, ``11月22日``, ``2026年``,
``20:00``, ``8点``), ordinals (``第3名``), and digits that are part of a name or an identifier
(``app2``, ``A1``, ``3号台``). Chinese numerals (``三个月``) are words, not cited figures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["amount", "percent", "points", "multiple", "quantity"]

_SCALES = {"万亿": 1e12, "亿": 1e8, "万": 1e4, "千": 1e3}

# One figure: an optional currency sign, the digits (thousands separated by commas or not), an
# optional fraction, an optional Chinese scale and an optional unit that says what kind it is.
_NUMBER = re.compile(
    r"(?P<currency>[¥￥])?\s?[+\-−－]?\s?"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?"
    r"(?P<scale>万亿|亿|万|千(?![克米瓦]))?"
    r"\s?(?P<unit>%|％|个百分点|百分点|倍|元|块)?"
)

# Spans that hold digits but no figure: dates, times, ordinals, identifiers.
_NOT_FIGURES = re.compile(
    r"\d{4}[-/年]\d{1,2}(?:[-/月]\d{1,2}[日号]?)?"  # 2026-11-01, 2026/11, 2026年11月1日
    r"|\d{4}年"  # 2026年
    r"|\d{1,2}月(?:\d{1,2}[日号])?"  # 11月, 11月22日
    r"|\d{1,2}[日号]"  # 22日, 3号(台)
    r"|\d{1,2}:\d{2}(?::\d{2})?"  # 20:00
    r"|\d{1,2}点(?:\d{1,2}分)?(?!数)"  # 8点, 8点30分 (not 百分点: no digit before 点 there)
    r"|第\s?\d+"  # 第3名
    r"|[A-Za-z_]+\d+[A-Za-z_\d]*"  # app2, A1, hallA2
    r"|\d+[A-Za-z_]+"  # 2B, 30d (a key name)
)


@dataclass(frozen=True)
class CitedNumber:
    """One figure in a text: as written, the value it states and how far rounding may move it."""

    text: str
    value: float  # the magnitude, scale applied (12.3万 -> 123000.0)
    tolerance: float  # half a unit of the last shown digit, scale applied
    kind: Kind
    start: int
    end: int


def _kind(currency: str | None, scale: str | None, unit: str | None) -> Kind:
    if unit in ("%", "％"):
        return "percent"
    if unit in ("个百分点", "百分点"):
        return "points"
    if unit == "倍":
        return "multiple"
    if currency or unit in ("元", "块"):
        return "amount"
    return "quantity"


def _blocked(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _NOT_FIGURES.finditer(text)]


def cited_numbers(text: str) -> list[CitedNumber]:
    """Every figure the text cites, in order."""
    blocked = _blocked(text)
    found: list[CitedNumber] = []
    for match in _NUMBER.finditer(text):
        start, end = match.span("int")
        if any(b_start <= start < b_end or b_start < end <= b_end for b_start, b_end in blocked):
            continue
        if start > 0 and (text[start - 1] == "." or (text[start - 1].isascii() and text[start - 1].isalpha())):
            continue  # part of a word or a version ("qwen2.5"), which the patterns above leave a digit of
        frac = match["frac"] or ""
        scale = _SCALES.get(match["scale"] or "", 1.0)
        value = float(match["int"].replace(",", "") + frac) * scale
        decimals = len(frac) - 1 if frac else 0
        found.append(
            CitedNumber(
                text=match.group(0).strip(),
                value=value,
                tolerance=0.5 * 10**-decimals * scale,
                kind=_kind(match["currency"], match["scale"], match["unit"]),
                start=match.start(),
                end=match.end(),
            )
        )
    return found


_SENTENCE_END = re.compile(r"[。！？!?；;\n]")


def sentence_around(text: str, start: int, end: int) -> str:
    """The sentence of ``text`` holding the span (split at 。！？；and line breaks), stripped."""
    left = max((m.end() for m in _SENTENCE_END.finditer(text, 0, start)), default=0)
    right_match = _SENTENCE_END.search(text, end)
    right = right_match.end() if right_match else len(text)
    return text[left:right].strip()
