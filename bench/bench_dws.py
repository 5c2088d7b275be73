"""Benchmark: generate and load 2 sites x 365 days, then materialize every DWS partition.

Prints rows per second for each step. The baseline, measured in the same run, is the way a
naive pipeline would back-fill the finance table: one Dagster run per business date. It is
timed on a sample of days and projected to the year; the ratio is projected / measured.
Goal: the full year for 2 sites materializes in under 60 s on a 2-core machine.

    .venv/bin/python bench/bench_dws.py [--sites 2] [--days 365] [--baseline-days 7]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dagster as dg  # noqa: E402
from _db import postgres_dagster_instance, scratch_database  # noqa: E402

from zqyy_assets.core import db  # noqa: E402
from zqyy_assets.defs.dws.assets import dws_finance_area_daily  # noqa: E402
from zqyy_assets.defs.ods.assets import ods_assets  # noqa: E402
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource  # noqa: E402
from zqyy_assets.tools.demo_venue import generate_demo_venue  # noqa: E402
from zqyy_assets.tools.dws_refresh import materialize_dws, ods_date_range  # noqa: E402


def _count(url: str, sql: str) -> int:
    with db.connect(url) as conn:
        return conn.execute(sql).fetchone()["n"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--baseline-days", type=int, default=7)
    args = parser.parse_args()
    end = date.today() - timedelta(days=1)

    with scratch_database() as url:
        t0 = time.perf_counter()
        counts = generate_demo_venue(
            url, sites=args.sites, days=args.days, seed=args.seed, end_date=end, show_progress=False
        )
        gen_s = time.perf_counter() - t0
        ods_rows = sum(counts.values())
        print(
            f"generate+load ODS: {ods_rows:,} rows in {gen_s:.1f} s = {ods_rows / gen_s:,.0f} rows/s "
            f"({counts.get('settlements', 0):,} settlements)"
        )

        calendar = VenueCalendarResource()
        span = ods_date_range(url, calendar)
        with postgres_dagster_instance(url) as instance:
            t0 = time.perf_counter()
            result = materialize_dws(instance, url, span.first, span.last, calendar)
            dws_s = time.perf_counter() - t0
            assert result.success
            checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
            per_asset = {
                m.asset_key.to_user_string(): m.metadata
                for m in (e.event_specific_data.materialization for e in result.get_asset_materialization_events())
            }
            finance_rows = _count(url, "SELECT count(*) AS n FROM dws.finance_area_daily")
            days = (span.last - span.first).days + 1
            print(f"materialize all DWS ({days} business dates, one run): {dws_s:.1f} s wall")
            for key in ("dws_finance_area_daily", "dws_member_profile", "dws_assistant_member"):
                md = per_asset.get(key, {})
                if "rows" in md:
                    print(
                        f"  {key}: {md['rows'].value:,} rows in {md['seconds'].value:.2f} s "
                        f"= {md['rows_per_second'].value:,.0f} rows/s"
                    )
            print(f"  checks: {checks}")
            print(
                f"  settlements aggregated: {counts.get('settlements', 0) / dws_s:,.0f} ODS rows/s end to end; "
                f"{finance_rows:,} finance rows"
            )

            # Baseline: one run per business date, on a sample of days, projected to the year.
            sample = [span.last - timedelta(days=i) for i in range(args.baseline_days)]
            resources = {"postgres": PostgresResource(database_url=url), "venue_calendar": calendar}
            t0 = time.perf_counter()
            for day in sample:
                dg.materialize(
                    [*ods_assets, dws_finance_area_daily],
                    selection=[dws_finance_area_daily],
                    instance=instance,
                    resources=resources,
                    partition_key=day.isoformat(),
                )
            per_run = (time.perf_counter() - t0) / len(sample)
            projected = per_run * days
            print(f"baseline: one run per business date: {per_run:.2f} s a run x {days} = {projected:.0f} s projected")
            print(
                f"ratio: single-run backfill is {projected / dws_s:.1f}x faster than run-per-day; "
                f"goal < 60 s: {'met' if dws_s < 60 else 'NOT met'} ({dws_s:.1f} s)"
            )


if __name__ == "__main__":
    main()
