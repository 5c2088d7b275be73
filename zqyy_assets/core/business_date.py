"""The venue's business date (营业日): a day that runs past midnight.

A moment belongs to the business date of (local time - cutoff hours). The SQL twin is
``dws.business_date(ts, tz, cutoff_hours)`` in migration 0002; a test keeps them in step.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_CUTOFF_HOURS = 6


def business_date(ts: datetime, tz: str = DEFAULT_TIMEZONE, cutoff_hours: int = DEFAULT_CUTOFF_HOURS) -> date:
    if ts.tzinfo is None:
        raise ValueError("business_date needs an aware datetime")
    return (ts.astimezone(ZoneInfo(tz)) - timedelta(hours=cutoff_hours)).date()
