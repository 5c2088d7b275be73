"""The demo venue's calendar: Chinese public holidays and how busy each business date is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Holiday:
    name: str
    start: date
    end: date  # inclusive
    factor: float


def _fixed(year: int) -> list[Holiday]:
    return [
        Holiday("元旦", date(year, 1, 1), date(year, 1, 1), 1.3),
        Holiday("劳动节", date(year, 5, 1), date(year, 5, 5), 1.4),
        Holiday("国庆", date(year, 10, 1), date(year, 10, 7), 1.45),
    ]


# Holidays tied to the lunar calendar, as announced by the State Council (2026 from its notice,
# 2027 Spring Festival approximate). Years outside this table get the fixed-date ones only.
_LUNAR = [
    Holiday("春节", date(2023, 1, 21), date(2023, 1, 27), 1.3),
    Holiday("清明", date(2023, 4, 5), date(2023, 4, 5), 1.15),
    Holiday("端午", date(2023, 6, 22), date(2023, 6, 24), 1.3),
    Holiday("中秋", date(2023, 9, 29), date(2023, 9, 30), 1.35),
    Holiday("春节", date(2024, 2, 10), date(2024, 2, 17), 1.3),
    Holiday("清明", date(2024, 4, 4), date(2024, 4, 6), 1.2),
    Holiday("端午", date(2024, 6, 8), date(2024, 6, 10), 1.3),
    Holiday("中秋", date(2024, 9, 15), date(2024, 9, 17), 1.35),
    Holiday("春节", date(2025, 1, 28), date(2025, 2, 4), 1.3),
    Holiday("清明", date(2025, 4, 4), date(2025, 4, 6), 1.2),
    Holiday("端午", date(2025, 5, 31), date(2025, 6, 2), 1.3),
    Holiday("中秋", date(2025, 10, 6), date(2025, 10, 8), 1.4),
    Holiday("春节", date(2026, 2, 15), date(2026, 2, 23), 1.3),
    Holiday("清明", date(2026, 4, 4), date(2026, 4, 6), 1.2),
    Holiday("端午", date(2026, 6, 19), date(2026, 6, 21), 1.3),
    Holiday("中秋", date(2026, 9, 25), date(2026, 9, 27), 1.35),
    Holiday("春节", date(2027, 2, 5), date(2027, 2, 11), 1.3),
]
HOLIDAYS: tuple[Holiday, ...] = tuple(_LUNAR + [h for y in range(2020, 2031) for h in _fixed(y)])

# Spring Festival eve and day one people spend with family: the venue is quiet, then busy.
_CNY_EVE = {date(2023, 1, 21), date(2024, 2, 9), date(2025, 1, 28), date(2026, 2, 16), date(2027, 2, 5)}
_WEEKDAY_FACTOR = (0.86, 0.83, 0.88, 0.93, 1.12, 1.42, 1.28)  # Monday .. Sunday


def holiday(d: date) -> Holiday | None:
    return next((h for h in HOLIDAYS if h.start <= d <= h.end), None)


def day_factor(d: date) -> float:
    """Expected traffic of a business date relative to an average day (before random noise)."""
    if d in _CNY_EVE:
        return 0.55
    if d - timedelta(days=1) in _CNY_EVE:
        return 0.8
    h = holiday(d)
    f = max(_WEEKDAY_FACTOR[d.weekday()], h.factor) if h else _WEEKDAY_FACTOR[d.weekday()]
    if (d.month == 7 and d.day >= 10) or d.month == 8:  # students' summer holiday
        f *= 1.08
    return f
