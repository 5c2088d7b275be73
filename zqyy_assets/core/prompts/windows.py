"""The app2 time windows: each time dimension's current period as of a business date, and the
period it is compared with. Pure date arithmetic on business dates (no clock, no time zone)."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, timedelta

from zqyy_assets.core.vocabulary import TIME_DIMENSIONS


@dataclass(frozen=True)
class Window:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def contains(self, d: date) -> bool:
        return self.start <= d <= self.end


@dataclass(frozen=True)
class PeriodPair:
    time_dimension: str
    current: Window
    comparison: Window
    to_date: bool  # the current window runs up to the as-of date (not a closed period)


def add_months(d: date, months: int) -> date:
    """The same day ``months`` later (or earlier), clamped to the target month's last day."""
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _quarter_start(d: date) -> date:
    return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def period_pair(time_dimension: str, as_of: date) -> PeriodPair:
    """The current window for a time dimension as of a business date, and its comparison.

    To-date windows (this week/month/quarter, last 3/6 months) compare with the same span one
    period earlier (1 March..15 March with 1 February..15 February, the day clamped to the
    month's end); closed periods (last week/month/quarter) compare with the period before.
    """
    if time_dimension == "this_week":
        start = as_of - timedelta(days=as_of.weekday())
        return PeriodPair(
            time_dimension, Window(start, as_of), Window(start - timedelta(7), as_of - timedelta(7)), True
        )
    if time_dimension == "last_week":
        start = as_of - timedelta(days=as_of.weekday() + 7)
        return PeriodPair(
            time_dimension,
            Window(start, start + timedelta(6)),
            Window(start - timedelta(7), start - timedelta(1)),
            False,
        )
    if time_dimension in ("this_month", "this_quarter", "last_3_months", "last_6_months"):
        start, months = {
            "this_month": (_month_start(as_of), 1),
            "this_quarter": (_quarter_start(as_of), 3),
            "last_3_months": (add_months(_month_start(as_of), -2), 3),
            "last_6_months": (add_months(_month_start(as_of), -5), 6),
        }[time_dimension]
        return PeriodPair(
            time_dimension,
            Window(start, as_of),
            Window(add_months(start, -months), add_months(as_of, -months)),
            True,
        )
    if time_dimension in ("last_month", "last_quarter"):
        months = 1 if time_dimension == "last_month" else 3
        this_start = _month_start(as_of) if months == 1 else _quarter_start(as_of)
        start = add_months(this_start, -months)
        before = add_months(start, -months)
        return PeriodPair(
            time_dimension, Window(start, this_start - timedelta(1)), Window(before, start - timedelta(1)), False
        )
    raise ValueError(f"unknown time dimension {time_dimension!r}; known: {', '.join(TIME_DIMENSIONS)}")


def earliest_needed(as_of: date) -> date:
    """The first business date any of the eight comparison windows reaches back to."""
    return min(period_pair(td, as_of).comparison.start for td in TIME_DIMENSIONS)
