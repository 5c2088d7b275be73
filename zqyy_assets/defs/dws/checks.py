"""Asset checks: DWS row counts and money totals reconcile with ODS to the cent.

Each check returns its evidence (totals on both sides, the first mismatches) as metadata so
the on-call engineer sees why it failed without running SQL.
"""

from decimal import Decimal

import dagster as dg

from zqyy_assets.defs.dws.assets import (
    dws_assistant_member,
    dws_finance_area_daily,
    dws_member_profile,
)
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource

_FINANCE_MEASURES = ("revenue", "table_fee", "assistant_fee", "goods_amount", "discount", "orders", "table_minutes")

_FINANCE_SIDES = "COALESCE(o.{m}, 0) AS ods_{m}, COALESCE(d.{m}, 0) AS dws_{m}, COALESCE(a.{m}, 0) AS areas_{m}"

_FINANCE_RECONCILE = f"""
WITH bounds AS (SELECT min(biz_date) AS lo, max(biz_date) AS hi FROM dws.finance_area_daily),
ods_day AS (
    SELECT s.site_id, dws.business_date(s.settled_at, %(tz)s, %(cutoff)s) AS biz_date,
           sum(total) AS revenue, sum(table_fee) AS table_fee, sum(assistant_fee) AS assistant_fee,
           sum(goods_amount) AS goods_amount, sum(discount) AS discount, count(*) AS orders,
           sum(table_minutes) AS table_minutes
    FROM ods.settlements s, bounds
    WHERE dws.business_date(s.settled_at, %(tz)s, %(cutoff)s) BETWEEN bounds.lo AND bounds.hi
    GROUP BY 1, 2
),
ods_recharge AS (
    SELECT r.site_id, dws.business_date(r.recharged_at, %(tz)s, %(cutoff)s) AS biz_date, sum(amount) AS recharge_amount
    FROM ods.recharges r, bounds
    WHERE dws.business_date(r.recharged_at, %(tz)s, %(cutoff)s) BETWEEN bounds.lo AND bounds.hi
    GROUP BY 1, 2
),
ods_side AS (
    SELECT site_id, biz_date, {", ".join(f"COALESCE(d.{m}, 0) AS {m}" for m in _FINANCE_MEASURES)},
           COALESCE(r.recharge_amount, 0) AS recharge_amount
    FROM ods_day d FULL JOIN ods_recharge r USING (site_id, biz_date)
),
dws_all AS (
    SELECT site_id, biz_date, {", ".join(_FINANCE_MEASURES)}, recharge_amount
    FROM dws.finance_area_daily WHERE area_code = 'all'
),
dws_areas AS (
    SELECT site_id, biz_date, {", ".join(f"sum({m}) AS {m}" for m in _FINANCE_MEASURES)}
    FROM dws.finance_area_daily WHERE area_code <> 'all' GROUP BY 1, 2
)
SELECT site_id, biz_date,
       {", ".join(_FINANCE_SIDES.format(m=m) for m in _FINANCE_MEASURES)},
       COALESCE(o.recharge_amount, 0) AS ods_recharge_amount, COALESCE(d.recharge_amount, 0) AS dws_recharge_amount
FROM ods_side o
FULL JOIN dws_all d USING (site_id, biz_date)
FULL JOIN dws_areas a USING (site_id, biz_date)
ORDER BY site_id, biz_date
"""


def _fmt(value: Decimal | int) -> str:
    return str(value)


@dg.asset_check(asset=dws_finance_area_daily, blocking=False)
def finance_reconciles_with_ods(
    postgres: PostgresResource, venue_calendar: VenueCalendarResource
) -> dg.AssetCheckResult:
    """Every business date in DWS: the 'all' row equals ODS and the areas sum to the 'all' row."""
    params = {"tz": venue_calendar.timezone, "cutoff": venue_calendar.business_day_cutoff_hours}
    with postgres.connect() as conn:
        rows = conn.execute(_FINANCE_RECONCILE, params).fetchall()
    mismatches = []
    totals = {
        "ods_revenue": Decimal(0),
        "dws_revenue": Decimal(0),
        "ods_recharge": Decimal(0),
        "dws_recharge": Decimal(0),
    }
    for row in rows:
        totals["ods_revenue"] += row["ods_revenue"]
        totals["dws_revenue"] += row["dws_revenue"]
        totals["ods_recharge"] += row["ods_recharge_amount"]
        totals["dws_recharge"] += row["dws_recharge_amount"]
        for m in _FINANCE_MEASURES:
            if not (row[f"ods_{m}"] == row[f"dws_{m}"] == row[f"areas_{m}"]):
                mismatches.append(
                    f"site {row['site_id']} {row['biz_date']} {m}: ods={_fmt(row[f'ods_{m}'])} "
                    f"dws_all={_fmt(row[f'dws_{m}'])} sum_of_areas={_fmt(row[f'areas_{m}'])}"
                )
        if row["ods_recharge_amount"] != row["dws_recharge_amount"]:
            mismatches.append(
                f"site {row['site_id']} {row['biz_date']} recharge_amount: ods={row['ods_recharge_amount']} "
                f"dws={row['dws_recharge_amount']}"
            )
    return dg.AssetCheckResult(
        passed=not mismatches,
        metadata={
            "site_days_compared": len(rows),
            "mismatch_count": len(mismatches),
            "first_mismatches": dg.MetadataValue.md("\n".join(f"- {m}" for m in mismatches[:10]) or "none"),
            **{k: dg.MetadataValue.text(str(v)) for k, v in totals.items()},
        },
    )


@dg.asset_check(asset=dws_member_profile, blocking=False)
def member_profile_reconciles_with_ods(
    postgres: PostgresResource, venue_calendar: VenueCalendarResource
) -> dg.AssetCheckResult:
    """One profile per ODS member, and 180-day spend per site equals ODS for the same window."""
    params = {"tz": venue_calendar.timezone, "cutoff": venue_calendar.business_day_cutoff_hours}
    with postgres.connect() as conn:
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM ods.members) AS ods_members,"
            " (SELECT count(*) FROM dws.member_profile) AS profiles"
        ).fetchone()
        spend = conn.execute(
            """WITH p AS (SELECT site_id, max(as_of_date) AS as_of_date, sum(spend_180d) AS dws_spend
                          FROM dws.member_profile GROUP BY site_id)
               SELECT p.site_id, p.dws_spend,
                      COALESCE((SELECT sum(total) FROM ods.settlements s
                                WHERE s.site_id = p.site_id AND s.member_id IS NOT NULL
                                  AND p.as_of_date - dws.business_date(s.settled_at, %(tz)s, %(cutoff)s)
                                      BETWEEN 0 AND 179), 0)
                        AS ods_spend
               FROM p ORDER BY p.site_id""",
            params,
        ).fetchall()
    off = [
        f"site {r['site_id']}: dws={r['dws_spend']} ods={r['ods_spend']}"
        for r in spend
        if r["dws_spend"] != r["ods_spend"]
    ]
    passed = counts["ods_members"] == counts["profiles"] and not off
    return dg.AssetCheckResult(
        passed=passed,
        metadata={
            "ods_members": counts["ods_members"],
            "profiles": counts["profiles"],
            "spend_180d_mismatches": dg.MetadataValue.md("\n".join(f"- {m}" for m in off) or "none"),
        },
    )


@dg.asset_check(asset=dws_assistant_member, blocking=False)
def assistant_member_reconciles_with_ods(postgres: PostgresResource) -> dg.AssetCheckResult:
    """Services, minutes and fees summed over all pairs equal ODS assistant services with a member."""
    with postgres.connect() as conn:
        row = conn.execute(
            """SELECT (SELECT count(*) FROM ods.assistant_services WHERE member_id IS NOT NULL) AS ods_services,
                      (SELECT COALESCE(sum(fee), 0) FROM ods.assistant_services
                        WHERE member_id IS NOT NULL) AS ods_fees,
                      (SELECT COALESCE(sum(minutes), 0) FROM ods.assistant_services
                        WHERE member_id IS NOT NULL) AS ods_minutes,
                      (SELECT COALESCE(sum(services), 0) FROM dws.assistant_member) AS dws_services,
                      (SELECT COALESCE(sum(fees), 0) FROM dws.assistant_member) AS dws_fees,
                      (SELECT COALESCE(sum(minutes), 0) FROM dws.assistant_member) AS dws_minutes"""
        ).fetchone()
    passed = (
        row["ods_services"] == row["dws_services"]
        and row["ods_fees"] == row["dws_fees"]
        and row["ods_minutes"] == row["dws_minutes"]
    )
    return dg.AssetCheckResult(passed=passed, metadata={k: dg.MetadataValue.text(str(v)) for k, v in row.items()})


dws_checks = [finance_reconciles_with_ods, member_profile_reconciles_with_ods, assistant_member_reconciles_with_ods]
