"""Queries behind the AI back office: cache invalidation, prewarm progress, alerts, event jobs."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from psycopg import sql
from psycopg.rows import DictRow

from api.schemas.common import AREAS, TIME_DIMENSIONS
from api.services import AsyncConn, one_row, paging
from api.services.paging import Filters
from zqyy_assets.core.partition_keys import app2_app_name, app2_target_id

PREWARM_TOTAL = len(TIME_DIMENSIONS) * len(AREAS)  # 72


async def invalidate_cache(conn: AsyncConn, site_id: int, app_type: str | None, member_id: int | None) -> int:
    filters = Filters().where("site_id = %s AND status = 'valid'", site_id).equals(cache_type=app_type)
    if member_id is not None:
        # A member's own answers, and the assistant-member ones (`{assistant_id}_{member_id}`).
        filters.where("(target_id = %s OR target_id LIKE %s)", str(member_id), f"%\\_{member_id}")
    statement = sql.SQL("UPDATE biz.ai_cache SET status = 'invalidated' WHERE {}").format(filters.clause())
    cur = await conn.execute(statement, filters.params)
    return cur.rowcount


async def prewarm_progress(conn: AsyncConn, site_id: int) -> dict:
    """The 72 App2 combinations of a site: which have a valid answer, which are missing."""
    cur = await conn.execute(
        """SELECT cache_type, target_id, max(created_at) AS last
           FROM biz.ai_cache
           WHERE site_id = %s AND status = 'valid' AND cache_type IN ('app2_finance', 'app2a_finance_area')
           GROUP BY cache_type, target_id""",
        (site_id,),
    )
    cached = {(r["cache_type"], r["target_id"]): r["last"] for r in await cur.fetchall()}
    missing, stamps = [], []
    for time_dimension in TIME_DIMENSIONS:
        for area in AREAS:
            target = app2_target_id(time_dimension, area)
            stamp = cached.get((app2_app_name(area), target))
            if stamp is None:
                missing.append({"target_id": target, "time_dimension": time_dimension, "area": area})
            else:
                stamps.append(stamp)
    return {
        "site_id": site_id,
        "total": PREWARM_TOTAL,
        "done": PREWARM_TOTAL - len(missing),
        "missing": missing,
        "last_updated": max(stamps) if stamps else None,
    }


_ALERT_COLUMNS = """id, app_type, alert_type AS status, alert_status, error_message, created_at, last_seen_at,
                    occurrences, site_id, ledger_id AS log_id, dagster_run_id, event_id"""
# A run-wide alert (site_id NULL, e.g. a prewarm run over every site) belongs to no site and
# carries no site's data: every admin sees it. Everything else is filtered to the one site.
_ALERT_SCOPE = "(site_id = %s OR site_id IS NULL)"


async def list_alerts(
    conn: AsyncConn, site_id: int, alert_status: str | None, *, page: int, page_size: int
) -> tuple[list[DictRow], int]:
    filters = Filters().where(_ALERT_SCOPE, site_id)
    if alert_status == "pending":  # the seed's "never handled" (NULL) is pending too
        filters.where("coalesce(alert_status, 'pending') = %s", alert_status)
    else:
        filters.equals(alert_status=alert_status)
    return await paging.page(
        conn,
        table=("biz", "ai_alerts"),
        columns=_ALERT_COLUMNS,
        filters=filters,
        order_by="last_seen_at DESC, id DESC",
        page=page,
        page_size=page_size,
    )


async def recent_alerts(conn: AsyncConn, site_id: int, limit: int = 10) -> list[dict]:
    cur = await conn.execute(
        f"""SELECT {_ALERT_COLUMNS} FROM biz.ai_alerts WHERE {_ALERT_SCOPE}
            ORDER BY last_seen_at DESC, id DESC LIMIT %s""",
        (site_id, limit),
    )
    return await cur.fetchall()


async def alert_site(conn: AsyncConn, alert_id: int) -> tuple[bool, int | None]:
    """(exists, site_id) of an alert, to tell 404 from 403 before touching it."""
    row = await (await conn.execute("SELECT site_id FROM biz.ai_alerts WHERE id = %s", (alert_id,))).fetchone()
    return (row is not None, row["site_id"] if row else None)


async def set_alert_status(conn: AsyncConn, alert_id: int, alert_status: str, handled_by: str) -> DictRow:
    """Set an existing alert's status (the caller checked it exists)."""
    cur = await conn.execute(
        """UPDATE biz.ai_alerts SET alert_status = %s, handled_at = now(), handled_by = %s
           WHERE id = %s RETURNING id, alert_status""",
        (alert_status, handled_by, alert_id),
    )
    return await one_row(cur)


def local_day_bounds(day_from: date, day_to: date, tz: str) -> tuple[datetime, datetime]:
    """[start of day_from, start of the day after day_to) in the venue's timezone."""
    zone = ZoneInfo(tz)
    start = datetime.combine(day_from, datetime.min.time(), zone)
    end = datetime.combine(day_to + timedelta(days=1), datetime.min.time(), zone)
    return start, end


_JOB_COLUMNS = """id, event_type, member_id, assistant_id, status, app_chain, is_forced, site_id, biz_date,
                  started_at, finished_at, created_at, dagster_run_ids"""


async def list_jobs(
    conn: AsyncConn,
    site_id: int,
    *,
    event_type: str | None,
    status: str | None,
    created_from: datetime | None,
    created_before: datetime | None,
    page: int,
    page_size: int,
) -> tuple[list[DictRow], int]:
    filters = (
        Filters()
        .where("site_id = %s", site_id)
        .equals(event_type=event_type, status=status)
        .compare("created_at", ">=", created_from)
        .compare("created_at", "<", created_before)
    )
    return await paging.page(
        conn,
        table=("biz", "ai_events"),
        columns=_JOB_COLUMNS,
        filters=filters,
        order_by="created_at DESC, id DESC",
        page=page,
        page_size=page_size,
    )


async def skipped_duplicates(conn: AsyncConn, site_id: int, biz_date: date) -> int:
    cur = await conn.execute(
        """SELECT count(*) AS n FROM biz.ai_events
           WHERE site_id = %s AND biz_date = %s AND status = 'skipped_duplicate'""",
        (site_id, biz_date),
    )
    return int((await one_row(cur))["n"])


async def event_site(conn: AsyncConn, event_id: int) -> tuple[bool, int | None]:
    row = await (await conn.execute("SELECT site_id FROM biz.ai_events WHERE id = %s", (event_id,))).fetchone()
    return (row is not None, row["site_id"] if row else None)


# The ledger keeps the call's target; the member is the whole id, or the part after `{assistant}_`.
_RUN_LOG_COLUMNS = r"""id, app_name AS app_type, trigger_type, target_id,
    CASE WHEN target_id ~ '^[0-9]{1,18}$' THEN target_id::bigint
         WHEN target_id ~ '^[0-9]{1,18}_[0-9]{1,18}$' THEN split_part(target_id, '_', 2)::bigint END AS member_id,
    tokens_used, cost_cny::float8 AS cost_cny, latency_ms, status, site_id, called_at AS created_at, dagster_run_id"""


async def list_run_logs(
    conn: AsyncConn,
    site_id: int,
    *,
    app_type: str | None,
    status: str | None,
    trigger_type: str | None,
    called_from: datetime | None,
    called_before: datetime | None,
    page: int,
    page_size: int,
) -> tuple[list[DictRow], int]:
    filters = (
        Filters()
        .where("site_id = %s", site_id)
        .equals(app_name=app_type, status=status, trigger_type=trigger_type)
        .compare("called_at", ">=", called_from)
        .compare("called_at", "<", called_before)
    )
    return await paging.page(
        conn,
        table=("biz", "ai_call_ledger"),
        columns=_RUN_LOG_COLUMNS,
        filters=filters,
        order_by="called_at DESC, id DESC",
        page=page,
        page_size=page_size,
    )


async def get_run_log(conn: AsyncConn, log_id: int) -> dict | None:
    cur = await conn.execute(
        f"""SELECT {_RUN_LOG_COLUMNS}, request_prompt, response_text, error_message, error_code, session_id,
                   finished_at, provider, model, attempts
            FROM biz.ai_call_ledger WHERE id = %s""",
        (log_id,),
    )
    return await cur.fetchone()
