"""The DWS business-date partitions, one a day in the venue's time zone."""

import dagster as dg

from zqyy_assets.core.business_date import DEFAULT_TIMEZONE

# Business dates. The demo venue's year starts inside this range; end_offset=1 includes the
# current (still open) business day so live traffic shows up before the day closes.
DWS_START_DATE = "2025-01-01"


def build_business_date_partitions(timezone: str) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=DWS_START_DATE, timezone=timezone, end_offset=1)


# The default venue's; the code location uses its own venue's (``dws/definitions.py``).
business_date_partitions = build_business_date_partitions(DEFAULT_TIMEZONE)
