"""SQL that derives the DWS tables from ODS.

Each function replaces its slice in the caller's transaction (delete-then-insert keyed on the
slice), so re-running a partition or a refresh is idempotent and readers never see half a day.
"""

from __future__ import annotations

from datetime import date

import psycopg

_FINANCE_AREA_DAILY = """
WITH s AS (
    SELECT site_id,
           dws.business_date(settled_at, %(tz)s, %(cutoff)s) AS biz_date,
           area_code, total, table_fee, assistant_fee, goods_amount, discount,
           table_minutes, member_id
    FROM ods.settlements
    -- bounds on settled_at (index-friendly) equal to the business-date range
    WHERE settled_at >= ((%(start)s::date)::timestamp + make_interval(hours => %(cutoff)s)) AT TIME ZONE %(tz)s
      AND settled_at <  ((%(end)s::date + 1)::timestamp + make_interval(hours => %(cutoff)s)) AT TIME ZONE %(tz)s
), per_area AS (
    SELECT site_id, biz_date, COALESCE(area_code, 'all') AS area_code,
           sum(total) AS revenue, sum(table_fee) AS table_fee, sum(assistant_fee) AS assistant_fee,
           sum(goods_amount) AS goods_amount, sum(discount) AS discount, count(*) AS orders,
           sum(table_minutes) AS table_minutes,
           COALESCE(sum(total) FILTER (WHERE member_id IS NOT NULL), 0) AS member_revenue,
           count(*) FILTER (WHERE member_id IS NOT NULL) AS member_orders
    FROM s
    GROUP BY GROUPING SETS ((site_id, biz_date, area_code), (site_id, biz_date))
), recharge AS (
    SELECT site_id, dws.business_date(recharged_at, %(tz)s, %(cutoff)s) AS biz_date, 'all'::text AS area_code,
           sum(amount) AS recharge_amount, count(*) AS recharge_count
    FROM ods.recharges
    WHERE recharged_at >= ((%(start)s::date)::timestamp + make_interval(hours => %(cutoff)s)) AT TIME ZONE %(tz)s
      AND recharged_at <  ((%(end)s::date + 1)::timestamp + make_interval(hours => %(cutoff)s)) AT TIME ZONE %(tz)s
    GROUP BY 1, 2
)
INSERT INTO dws.finance_area_daily (
    site_id, biz_date, area_code, revenue, table_fee, assistant_fee, goods_amount, discount,
    orders, table_minutes, member_revenue, member_orders, recharge_amount, recharge_count)
SELECT COALESCE(a.site_id, r.site_id), COALESCE(a.biz_date, r.biz_date), COALESCE(a.area_code, r.area_code),
       COALESCE(a.revenue, 0), COALESCE(a.table_fee, 0), COALESCE(a.assistant_fee, 0),
       COALESCE(a.goods_amount, 0), COALESCE(a.discount, 0), COALESCE(a.orders, 0),
       COALESCE(a.table_minutes, 0), COALESCE(a.member_revenue, 0), COALESCE(a.member_orders, 0),
       COALESCE(r.recharge_amount, 0), COALESCE(r.recharge_count, 0)
FROM per_area a
FULL JOIN recharge r USING (site_id, biz_date, area_code)
"""


def refresh_finance_area_daily(conn: psycopg.Connection, start: date, end: date, *, tz: str, cutoff_hours: int) -> int:
    """Recompute business dates start..end (inclusive) for every site; return rows written."""
    params = {"start": start, "end": end, "tz": tz, "cutoff": cutoff_hours}
    conn.execute("DELETE FROM dws.finance_area_daily WHERE biz_date BETWEEN %(start)s AND %(end)s", params)
    return conn.execute(_FINANCE_AREA_DAILY, params).rowcount


# Time slots by the local hour a visit started.
_TIME_SLOT = """CASE
    WHEN extract(hour FROM started_at AT TIME ZONE %(tz)s) BETWEEN 6 AND 11 THEN 'morning'
    WHEN extract(hour FROM started_at AT TIME ZONE %(tz)s) BETWEEN 12 AND 17 THEN 'afternoon'
    WHEN extract(hour FROM started_at AT TIME ZONE %(tz)s) BETWEEN 18 AND 23 THEN 'evening'
    ELSE 'late_night' END"""

_MEMBER_PROFILE = f"""
WITH visits AS (
    SELECT site_id, member_id, settled_at, started_at, area_code, total,
           dws.business_date(settled_at, %(tz)s, %(cutoff)s) AS biz_date,
           {_TIME_SLOT} AS time_slot
    FROM ods.settlements WHERE member_id IS NOT NULL
), as_of AS (
    -- each site's profile is as of its latest business date with data
    SELECT site_id, max(biz_date) AS as_of_date FROM visits GROUP BY site_id
), windowed AS (
    SELECT v.*, a.as_of_date, a.as_of_date - v.biz_date AS age_days
    FROM visits v JOIN as_of a USING (site_id)
), stats AS (
    SELECT site_id, member_id,
           min(settled_at) AS first_visit_at, max(settled_at) AS last_visit_at,
           min(age_days) AS recency_days,
           count(*) FILTER (WHERE age_days < 30)  AS visits_30d,
           count(*) FILTER (WHERE age_days < 90)  AS visits_90d,
           count(*) FILTER (WHERE age_days < 180) AS visits_180d,
           COALESCE(sum(total) FILTER (WHERE age_days < 30), 0)  AS spend_30d,
           COALESCE(sum(total) FILTER (WHERE age_days < 90), 0)  AS spend_90d,
           COALESCE(sum(total) FILTER (WHERE age_days < 180), 0) AS spend_180d,
           COALESCE(sum(total) FILTER (WHERE age_days >= 30 AND age_days < 60), 0) AS spend_prev_30d,
           max(age_days) AS first_age_days
    FROM windowed GROUP BY site_id, member_id
), fav_area AS (
    SELECT DISTINCT ON (site_id, member_id) site_id, member_id, area_code
    FROM windowed WHERE age_days < 180
    GROUP BY site_id, member_id, area_code
    ORDER BY site_id, member_id, count(*) DESC, area_code
), fav_slot AS (
    SELECT DISTINCT ON (site_id, member_id) site_id, member_id, time_slot
    FROM windowed WHERE age_days < 180
    GROUP BY site_id, member_id, time_slot
    ORDER BY site_id, member_id, count(*) DESC, time_slot
), fav_assistant AS (
    SELECT DISTINCT ON (x.site_id, x.member_id) x.site_id, x.member_id, x.assistant_id
    FROM ods.assistant_services x JOIN as_of a USING (site_id)
    WHERE x.member_id IS NOT NULL
      AND a.as_of_date - dws.business_date(x.ended_at, %(tz)s, %(cutoff)s) < 180
    GROUP BY x.site_id, x.member_id, x.assistant_id
    ORDER BY x.site_id, x.member_id, count(*) DESC, x.assistant_id
), recharge AS (
    SELECT r.site_id, r.member_id, sum(r.amount) AS recharge_180d
    FROM ods.recharges r JOIN as_of a USING (site_id)
    WHERE a.as_of_date - dws.business_date(r.recharged_at, %(tz)s, %(cutoff)s) < 180
    GROUP BY 1, 2
)
INSERT INTO dws.member_profile (
    site_id, member_id, as_of_date, first_visit_at, last_visit_at, recency_days,
    visits_30d, visits_90d, visits_180d, spend_30d, spend_90d, spend_180d, spend_prev_30d,
    spend_trend, recharge_180d, favourite_area, favourite_time_slot, favourite_assistant_id)
SELECT m.site_id, m.member_id, COALESCE(a.as_of_date, current_date),
       s.first_visit_at, s.last_visit_at, s.recency_days,
       COALESCE(s.visits_30d, 0), COALESCE(s.visits_90d, 0), COALESCE(s.visits_180d, 0),
       COALESCE(s.spend_30d, 0), COALESCE(s.spend_90d, 0), COALESCE(s.spend_180d, 0),
       COALESCE(s.spend_prev_30d, 0),
       CASE WHEN COALESCE(s.visits_180d, 0) = 0 THEN 'inactive'
            WHEN s.first_age_days < 30 THEN 'new'
            WHEN s.spend_30d > s.spend_prev_30d * 1.2 THEN 'up'
            WHEN s.spend_30d < s.spend_prev_30d * 0.8 THEN 'down'
            ELSE 'flat' END,
       COALESCE(r.recharge_180d, 0), fa.area_code, fs.time_slot, fx.assistant_id
FROM ods.members m
LEFT JOIN as_of a USING (site_id)
LEFT JOIN stats s USING (site_id, member_id)
LEFT JOIN fav_area fa USING (site_id, member_id)
LEFT JOIN fav_slot fs USING (site_id, member_id)
LEFT JOIN fav_assistant fx USING (site_id, member_id)
LEFT JOIN recharge r USING (site_id, member_id)
"""


def refresh_member_profile(conn: psycopg.Connection, *, tz: str, cutoff_hours: int) -> int:
    conn.execute("DELETE FROM dws.member_profile")
    return conn.execute(_MEMBER_PROFILE, {"tz": tz, "cutoff": cutoff_hours}).rowcount


_ASSISTANT_MEMBER = """
INSERT INTO dws.assistant_member (
    site_id, assistant_id, member_id, services, minutes, fees, first_service_at, last_service_at)
SELECT site_id, assistant_id, member_id, count(*), sum(minutes), sum(fee), min(started_at), max(ended_at)
FROM ods.assistant_services
WHERE member_id IS NOT NULL
GROUP BY site_id, assistant_id, member_id
"""


def refresh_assistant_member(conn: psycopg.Connection) -> int:
    conn.execute("DELETE FROM dws.assistant_member")
    return conn.execute(_ASSISTANT_MEMBER).rowcount
