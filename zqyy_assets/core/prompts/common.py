"""What every prompt builder shares: the skip signal and how figures and times are written."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo


class NothingToAsk(Exception):
    """The target has no data the app could analyse; the asset records it as skipped, no call."""


def money(value: Decimal | float | int | None) -> float:
    """An amount as the prompts carry it: a float rounded to the fen (None counts as zero)."""
    return float(round(Decimal(value or 0), 2))


def local_time(ts: datetime | None, tz: str) -> str | None:
    """A timestamp as the venue's staff read it: local wall-clock time to the minute."""
    return ts.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") if ts else None


def local_date(ts: datetime, tz: str) -> date:
    """The venue's calendar date of a timestamp."""
    return ts.astimezone(ZoneInfo(tz)).date()


def iso_date(d: date | None) -> str | None:
    return d.isoformat() if d else None
