"""Materialize the DWS assets for the business dates present in ODS, as Dagster runs.

Used by ``make demo`` and the benchmark: the finance table's whole range is one run (its
single-run backfill policy), so a year costs one run launch, not 365.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import dagster as dg

from zqyy_assets.core import db
from zqyy_assets.defs.dws.assets import (
    dws_assistant_member,
    dws_finance_area_daily,
    dws_member_profile,
)
from zqyy_assets.defs.dws.checks import dws_checks
from zqyy_assets.defs.dws.partitions import build_business_date_partitions
from zqyy_assets.defs.ods.assets import ods_assets
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource


@dataclass(frozen=True)
class OdsDateRange:
    first: date | None
    last: date | None
    dws_last: date | None

    @property
    def dws_is_current(self) -> bool:
        return self.last is not None and self.dws_last is not None and self.dws_last >= self.last


def ods_date_range(database_url: str, calendar: VenueCalendarResource) -> OdsDateRange:
    with db.connect(database_url) as conn:
        row = conn.execute(
            """SELECT dws.business_date(min(settled_at), %(tz)s, %(cutoff)s) AS first,
                      dws.business_date(max(settled_at), %(tz)s, %(cutoff)s) AS last,
                      (SELECT max(biz_date) FROM dws.finance_area_daily) AS dws_last
               FROM ods.settlements""",
            {"tz": calendar.timezone, "cutoff": calendar.business_day_cutoff_hours},
        ).fetchone()
    return OdsDateRange(row["first"], row["last"], row["dws_last"])


def materialize_dws(
    instance: dg.DagsterInstance,
    database_url: str,
    first: date,
    last: date,
    calendar: VenueCalendarResource | None = None,
) -> dg.ExecuteInProcessResult:
    """One run: finance days first..last, member profile, assistant-member, and their checks."""
    calendar = calendar or VenueCalendarResource()
    keys = build_business_date_partitions(calendar.timezone).get_partition_keys()
    start_key = max(first.isoformat(), keys[0])
    end_key = min(last.isoformat(), keys[-1])
    return dg.materialize(
        [*ods_assets, dws_finance_area_daily, dws_member_profile, dws_assistant_member, *dws_checks],
        selection=[dws_finance_area_daily, dws_member_profile, dws_assistant_member],
        instance=instance,
        resources={"postgres": PostgresResource(database_url=database_url), "venue_calendar": calendar},
        tags={
            "dagster/asset_partition_range_start": start_key,
            "dagster/asset_partition_range_end": end_key,
        },
    )
