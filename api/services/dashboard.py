"""The AI dashboard: calls, success rate, tokens, cost and latency from the LLM call ledger.

Days are calendar days in the venue's timezone. Every figure is for one site, except the
budget (tokens and CNY), which the LLM layer enforces for all sites together (it is the Bailian
account's budget), so it is shown as the account-wide total. Cost is each call's ``cost_cny``
(priced from its model's tokens, ``core/pricing.py``); what memoization saved comes from
``biz.ai_memo_hits`` (each hit's avoided call, priced from the app's recent calls).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from api.services import AsyncConn, one_row
from api.services.admin import local_day_bounds, recent_alerts
from zqyy_assets.core.apps import APP_NAMES

TREND_MIN_DAYS = 7


async def dashboard(conn: AsyncConn, site_id: int, *, date_from: date, date_to: date, tz: str, budget: dict) -> dict:
    start, end = local_day_bounds(date_from, date_to, tz)
    totals = await one_row(
        await conn.execute(
            """SELECT count(*) AS calls,
                      count(*) FILTER (WHERE status = 'success') AS successes,
                      COALESCE(sum(tokens_used), 0)::bigint AS tokens,
                      COALESCE(sum(cost_cny), 0)::float8 AS cost,
                      COALESCE(avg(latency_ms), 0)::float8 AS avg_latency
               FROM biz.ai_call_ledger
               WHERE site_id = %s AND called_at >= %s AND called_at < %s""",
            (site_id, start, end),
        )
    )

    trend_from = min(date_from, date_to - timedelta(days=TREND_MIN_DAYS - 1))
    trend_start, _ = local_day_bounds(trend_from, date_to, tz)
    cur = await conn.execute(
        """SELECT (called_at AT TIME ZONE %s)::date AS day, count(*) AS calls,
                  count(*) FILTER (WHERE status = 'success') AS successes
           FROM biz.ai_call_ledger
           WHERE site_id = %s AND called_at >= %s AND called_at < %s
           GROUP BY 1""",
        (tz, site_id, trend_start, end),
    )
    by_day = {r["day"]: r for r in await cur.fetchall()}
    trend = []
    day = trend_from
    while day <= date_to:  # every day appears, quiet ones with zero calls
        row = by_day.get(day)
        calls = row["calls"] if row else 0
        trend.append(
            {"date": day.isoformat(), "calls": calls, "success_rate": _rate(row["successes"], calls) if row else 0.0}
        )
        day += timedelta(days=1)

    cur = await conn.execute(
        """SELECT app_name AS app_type, count(*) AS count FROM biz.ai_call_ledger
           WHERE site_id = %s AND called_at >= %s AND called_at < %s
           GROUP BY app_name ORDER BY count DESC, app_name""",
        (site_id, start, end),
    )
    dist = await cur.fetchall()
    dist_total = sum(r["count"] for r in dist)
    distribution = [{**r, "percentage": _rate(r["count"], dist_total)} for r in dist]

    # One short indexed probe per app rather than a scan of the site's whole ledger.
    cur = await conn.execute(
        """SELECT a.app AS app_type, l.status AS last_status, l.called_at AS last_call_at
           FROM unnest(%s::text[]) WITH ORDINALITY AS a(app, n)
           LEFT JOIN LATERAL (
               SELECT status, called_at FROM biz.ai_call_ledger
               WHERE app_name = a.app AND site_id = %s ORDER BY called_at DESC LIMIT 1
           ) l ON true
           ORDER BY a.n""",
        (list(APP_NAMES), site_id),
    )
    health = await cur.fetchall()

    cost_by_app, memo = await _cost_by_app(conn, site_id, start, end)
    return {
        "today_calls": totals["calls"],
        "today_success_rate": _rate(totals["successes"], totals["calls"]),
        "today_tokens": int(totals["tokens"]),
        "today_cost_cny": round(totals["cost"], 6),
        "cost_by_app": cost_by_app,
        "memo_savings": memo,
        "today_avg_latency_ms": round(totals["avg_latency"], 2),
        "trend_7d": trend,
        "app_distribution": distribution,
        "budget": budget,
        "recent_alerts": await recent_alerts(conn, site_id),
        "app_health": health,
        "site_id": site_id,
        "date_from": date_from,
        "date_to": date_to,
    }


async def _cost_by_app(conn: AsyncConn, site_id: int, start: datetime, end: datetime) -> tuple[list[dict], dict]:
    """Per app: calls, tokens and CNY spent, and the memo hits with what they saved; and the totals saved."""
    cur = await conn.execute(
        """WITH spent AS (
               SELECT app_name, count(*) AS calls, COALESCE(sum(tokens_used), 0)::bigint AS tokens,
                      COALESCE(sum(cost_cny), 0)::float8 AS cost_cny
               FROM biz.ai_call_ledger WHERE site_id = %(site)s AND called_at >= %(start)s AND called_at < %(end)s
               GROUP BY app_name),
           saved AS (
               SELECT app_name, count(*) AS hits,
                      COALESCE(sum(tokens_in_avoided + tokens_out_avoided), 0)::bigint AS tokens,
                      COALESCE(sum(cost_avoided_cny), 0)::float8 AS cost_cny
               FROM biz.ai_memo_hits WHERE site_id = %(site)s AND hit_at >= %(start)s AND hit_at < %(end)s
               GROUP BY app_name)
           SELECT COALESCE(s.app_name, m.app_name) AS app_type,
                  COALESCE(s.calls, 0) AS calls, COALESCE(s.tokens, 0) AS tokens, COALESCE(s.cost_cny, 0) AS cost_cny,
                  COALESCE(m.hits, 0) AS memo_hits, COALESCE(m.tokens, 0) AS memo_tokens_avoided,
                  COALESCE(m.cost_cny, 0) AS memo_cost_avoided_cny
           FROM spent s FULL JOIN saved m ON m.app_name = s.app_name
           ORDER BY cost_cny DESC, app_type""",
        {"site": site_id, "start": start, "end": end},
    )
    rows = [
        {**r, "cost_cny": round(r["cost_cny"], 6), "memo_cost_avoided_cny": round(r["memo_cost_avoided_cny"], 6)}
        for r in await cur.fetchall()
    ]
    memo = {
        "hits": sum(r["memo_hits"] for r in rows),
        "tokens_avoided": sum(r["memo_tokens_avoided"] for r in rows),
        "cost_avoided_cny": round(sum(r["memo_cost_avoided_cny"] for r in rows), 6),
    }
    return rows, memo


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0
