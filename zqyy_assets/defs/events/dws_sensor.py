"""DWS completion -> ``dws_completed`` events in the inbox, one per affected active site.

A new materialization of ``dws_finance_area_daily`` (the table app2 reads) means that site's
finance insights can be answered again. The sensor turns the materializations of each DWS run
into one event per site with data in the run's business dates; the inbox sensor batches those
into one app2 prewarm run and the same-day dedup keeps it to once a day per site. Events go
through the inbox (rather than straight to a run) so they get the same status and dedup.
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import date

import dagster as dg

from zqyy_assets.core import inbox
from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.vocabulary import DWS_COMPLETED
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource

DWS_FINANCE_ASSET = dg.AssetKey("dws_finance_area_daily")
_BATCH = 1000


def _as_date(partition: str | None) -> date | None:
    try:
        return date.fromisoformat(partition) if partition else None
    except ValueError:
        return None


def affected_sites(conn: DictConnection, first: date | None, last: date | None) -> list[int]:
    """Active sites with finance rows in [first, last]; every active site when the span is unknown."""
    if first is None or last is None:
        rows = conn.execute("SELECT site_id FROM ods.sites WHERE is_active ORDER BY site_id").fetchall()
    else:
        rows = conn.execute(
            """SELECT DISTINCT f.site_id FROM dws.finance_area_daily f JOIN ods.sites s ON s.site_id = f.site_id
               WHERE s.is_active AND f.biz_date BETWEEN %s AND %s ORDER BY f.site_id""",
            (first, last),
        ).fetchall()
    return [r["site_id"] for r in rows]


@dg.sensor(
    name="dws_completion_sensor",
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Writes a dws_completed event per affected active site for each new DWS finance "
    "materialization run; the inbox sensor turns them into the app2 prewarm.",
)
def dws_completion_sensor(
    context: dg.SensorEvaluationContext, postgres: PostgresResource, venue_calendar: VenueCalendarResource
) -> dg.SensorResult:
    after = int(context.cursor) if context.cursor else None
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DWS_FINANCE_ASSET, after_storage_id=after), limit=_BATCH, ascending=True
    ).records
    if not records:
        return dg.SensorResult(skip_reason="no new DWS materialization", cursor=context.cursor)

    # One DWS run (a whole back-fill range is one run) -> one event per site.
    spans: OrderedDict[str, list[date | None]] = OrderedDict()
    for record in records:
        spans.setdefault(record.run_id, []).append(_as_date(record.partition_key))
    inserted = 0
    with postgres.transaction() as conn:
        for run_id, days in spans.items():
            known = [d for d in days if d is not None]
            first, last = (min(known), max(known)) if known and len(known) == len(days) else (None, None)
            for site_id in affected_sites(conn, first, last):
                event_id = inbox.insert_event(
                    conn,
                    event_type=DWS_COMPLETED,
                    site_id=site_id,
                    payload={
                        "dws_run_id": run_id,
                        "first_date": first.isoformat() if first else None,
                        "last_date": last.isoformat() if last else None,
                    },
                    source="dws_sensor",
                    # Re-reading the same materializations (a tick that failed after this
                    # commit) inserts nothing twice.
                    idempotency_key=f"dws:{run_id}:{site_id}",
                    timezone=venue_calendar.timezone,
                    cutoff_hours=venue_calendar.business_day_cutoff_hours,
                )
                inserted += event_id is not None
    context.log.info(f"{len(records)} DWS materializations in {len(spans)} run(s): {inserted} dws_completed events")
    return dg.SensorResult(cursor=str(records[-1].storage_id))
