"""The budget guard's running totals (``biz.ai_budget_bucket``, kept by a trigger) always equal
the sums over the ledger itself, whatever is inserted, finished, rewritten or deleted."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from zqyy_assets.core import db
from zqyy_assets.core.llm import budget, ledger

# The definition: what every finished and running row of the month counts (a running row
# reserves its tokens until the TTL; NULL cost counts 0), summed over the ledger directly.
REFERENCE = """
SELECT COALESCE(SUM(tokens) FILTER (WHERE called_at >= day_start), 0)::bigint AS daily_used,
       COALESCE(SUM(tokens), 0)::bigint AS monthly_used,
       COALESCE(SUM(cny) FILTER (WHERE called_at >= day_start), 0)::float8 AS daily_cost_cny,
       COALESCE(SUM(cny), 0)::float8 AS monthly_cost_cny
  FROM (SELECT l.called_at, b.day_start,
               CASE WHEN l.status = 'running' AND l.called_at > now() - make_interval(secs => %(ttl)s)
                    THEN GREATEST(l.tokens_reserved, l.tokens_in + l.tokens_out)
                    ELSE l.tokens_in + l.tokens_out END AS tokens,
               CASE WHEN l.status = 'running' AND l.called_at > now() - make_interval(secs => %(ttl)s)
                    THEN GREATEST(CASE WHEN l.tokens_reserved > 0 THEN %(reserve_cny)s ELSE 0 END,
                                  COALESCE(l.cost_cny, 0))
                    ELSE COALESCE(l.cost_cny, 0) END AS cny
          FROM (SELECT date_trunc('day', now() AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s AS day_start,
                       date_trunc('month', now() AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s AS month_start) b
          JOIN biz.ai_call_ledger l ON l.called_at >= b.month_start) x
"""

ROW = """INSERT INTO biz.ai_call_ledger (site_id, app_name, provider, request_prompt, status, tokens_in, tokens_out,
                                         tokens_reserved, cost_cny, called_at)
         VALUES (1, 'app3_clue', 'dashscope', '{}', %s, %s, %s, %s, %s, now() - %s::interval) RETURNING id"""


def _agree(conn, limits: budget.BudgetLimits) -> budget.BudgetStatus:
    status = budget.budget_status(conn, limits)
    params = {"tz": limits.timezone, "ttl": limits.reservation_ttl_s, "reserve_cny": limits.reserve_cost_cny}
    ref = conn.execute(REFERENCE, params).fetchone()
    assert (status.daily_used, status.monthly_used) == (ref["daily_used"], ref["monthly_used"])
    assert status.daily_cost_cny == pytest.approx(ref["daily_cost_cny"], abs=1e-9)
    assert status.monthly_cost_cny == pytest.approx(ref["monthly_cost_cny"], abs=1e-9)
    return status


@pytest.mark.parametrize("tz", ["Asia/Shanghai", "Asia/Kathmandu", "America/St_Johns"])
def test_the_buckets_equal_the_ledger_through_every_change(db_url: str, tz: str) -> None:
    limits = budget.BudgetLimits(timezone=tz, reservation_ttl_s=900, reserve_cost_cny=0.01)
    with db.connect(db_url, autocommit=True) as conn:
        ids = [
            conn.execute(ROW, row).fetchone()["id"]
            for row in [
                ("success", 400, 100, 0, 0.002, "1 minute"),
                ("failed", 300, 0, 0, None, "3 hours"),  # priced never: counts 0 CNY
                ("success", 50, 50, 0, 0.001, "26 hours"),  # yesterday, or the month before
                ("success", 999, 1, 0, 0.5, "45 days"),  # last month: not counted
                ("running", 0, 0, 2000, 0, "10 seconds"),  # in flight: reserves 2,000
                ("running", 7, 3, 2000, 0, "2 hours"),  # a crashed worker's: its own tokens only
                ("budget_exceeded", 0, 0, 0, 0, "5 minutes"),
            ]
        ]
        first = _agree(conn, limits)
        assert first.daily_used >= 2000  # the call in flight for 10 s counts, whatever the zone

        conn.execute(  # the call in flight ends
            "UPDATE biz.ai_call_ledger SET status = 'success', tokens_in = 800, tokens_out = 200, cost_cny = 0.004"
            " WHERE id = %s",
            (ids[4],),
        )
        _agree(conn, limits)
        conn.execute("UPDATE biz.ai_call_ledger SET status = 'failed' WHERE id = %s", (ids[0],))  # rejected answer
        _agree(conn, limits)
        conn.execute("UPDATE biz.ai_call_ledger SET tokens_out = 150 WHERE id = %s", (ids[1],))
        _agree(conn, limits)
        conn.execute("DELETE FROM biz.ai_call_ledger WHERE id = %s", (ids[2],))
        last = _agree(conn, limits)
        assert last.monthly_used != first.monthly_used


def test_admission_far_from_the_limits_needs_no_lock_and_near_them_takes_it(db_url: str) -> None:
    record = ledger.CallRecord(site_id=1, app_name="app3_clue", app_id="x", provider="dashscope", request_prompt="{}")
    limits = budget.BudgetLimits(daily_limit=10_000, reserve_tokens=100)
    pool = ThreadPoolExecutor(1)
    with db.connect(db_url, autocommit=True) as holder, db.connect(db_url, autocommit=True) as conn:
        with holder.transaction():
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (budget._BUDGET_LOCK_ID,))
            # 64 admissions at once could reserve 6,400 of the 10,000 left: no race can overrun.
            ledger_id, status = budget.admit_call(conn, record, limits, concurrent_admissions=64)
            assert status.allowed and ledger_id > 0
            # 128 could not: this one waits for the lock, until the holder lets go.
            waiting = pool.submit(budget.admit_call, conn, record, limits, concurrent_admissions=128)
            with db.connect(db_url, autocommit=True) as probe:
                deadline = time.monotonic() + 30
                while not probe.execute(
                    "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                ).fetchone()["n"]:
                    assert time.monotonic() < deadline, "the admission never waited for the lock"
            assert not waiting.done()
        assert waiting.result(timeout=30)[1].allowed
    pool.shutdown()
