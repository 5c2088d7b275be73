"""DWS assets: business figures computed in Postgres from ODS."""

import time
from datetime import date

import dagster as dg

from zqyy_assets.core import dws_sql as compute
from zqyy_assets.defs.dws.partitions import business_date_partitions
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource


def _row_metadata(rows: int, started: float) -> dict[str, dg.MetadataValue]:
    seconds = time.perf_counter() - started
    return {
        "rows": dg.MetadataValue.int(rows),
        "seconds": dg.MetadataValue.float(round(seconds, 3)),
        "rows_per_second": dg.MetadataValue.float(round(rows / seconds, 1) if seconds else 0.0),
    }


@dg.asset(
    group_name="dws",
    partitions_def=business_date_partitions,
    # A range of days runs as one run and one SQL statement: a year back-fills in seconds.
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=["ods_settlements", "ods_recharges"],
    kinds={"postgres"},
    description="Per site x area x business date: revenue, fees, goods, discount, orders, table hours, "
    "member share, recharge. Area 'all' is the whole site.",
)
def dws_finance_area_daily(
    context: dg.AssetExecutionContext, postgres: PostgresResource, venue_calendar: VenueCalendarResource
) -> dg.MaterializeResult:
    window = context.partition_time_window
    start = window.start.date()
    end = date.fromordinal(window.end.date().toordinal() - 1)  # the window's end is exclusive
    started = time.perf_counter()
    with postgres.transaction() as conn:
        rows = compute.refresh_finance_area_daily(
            conn, start, end, tz=venue_calendar.timezone, cutoff_hours=venue_calendar.business_day_cutoff_hours
        )
    context.log.info(f"dws_finance_area_daily {start}..{end}: {rows} rows")
    return dg.MaterializeResult(
        metadata={"first_date": str(start), "last_date": str(end), **_row_metadata(rows, started)}
    )


@dg.asset(
    group_name="dws",
    deps=["ods_members", "ods_settlements", "ods_recharges", "ods_assistant_services"],
    kinds={"postgres"},
    description="Per member as of the site's latest business date: recency, frequency and spend over "
    "30/90/180 days, favourite area, time slot and assistant, spend trend.",
)
def dws_member_profile(
    context: dg.AssetExecutionContext, postgres: PostgresResource, venue_calendar: VenueCalendarResource
) -> dg.MaterializeResult:
    started = time.perf_counter()
    with postgres.transaction() as conn:
        rows = compute.refresh_member_profile(
            conn, tz=venue_calendar.timezone, cutoff_hours=venue_calendar.business_day_cutoff_hours
        )
    return dg.MaterializeResult(metadata=_row_metadata(rows, started))


@dg.asset(
    group_name="dws",
    deps=["ods_assistant_services"],
    kinds={"postgres"},
    description="Per assistant x member: services, minutes, fees, first and last service.",
)
def dws_assistant_member(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    started = time.perf_counter()
    with postgres.transaction() as conn:
        rows = compute.refresh_assistant_member(conn)
    return dg.MaterializeResult(metadata=_row_metadata(rows, started))


dws_assets = [dws_finance_area_daily, dws_member_profile, dws_assistant_member]
