"""The token budget guard: daily and monthly limits, all sites together, over the ledger.

The check and the insert of the call's ledger row happen in one transaction under an advisory
lock. An admitted call's row is ``running`` and reserves ``reserve_tokens`` until it ends, so a
racing process sees it. A call is refused once used + reserved reaches the limit; a call
admitted just below the limit may overrun it by its own size, so N racing callers overrun by at
most one call each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.llm.ledger import CallRecord, insert_row

_BUDGET_LOCK_ID = 7_240_301  # project-wide advisory lock id for budget admission


@dataclass(frozen=True)
class BudgetLimits:
    daily_limit: int = 100_000
    monthly_limit: int = 2_000_000
    reserve_tokens: int = 2_000  # held by an in-flight call (the seeds' per-call estimate)
    reservation_ttl_s: float = 900.0  # a 'running' row older than this (a crashed worker) holds nothing
    timezone: str = "Asia/Shanghai"  # the day and month the limits count in


@dataclass(frozen=True)
class BudgetStatus:
    daily_used: int
    daily_limit: int
    monthly_used: int
    monthly_limit: int

    @property
    def allowed(self) -> bool:
        return self.daily_used < self.daily_limit and self.monthly_used < self.monthly_limit

    @property
    def reason(self) -> str | None:
        if self.daily_used >= self.daily_limit:
            return f"daily token budget spent: {self.daily_used} of {self.daily_limit}"
        if self.monthly_used >= self.monthly_limit:
            return f"monthly token budget spent: {self.monthly_used} of {self.monthly_limit}"
        return None

    def as_dict(self) -> dict[str, Any]:
        """The seeds' ``/api/admin/ai/budget`` shape."""
        return {
            "daily_used": self.daily_used,
            "daily_limit": self.daily_limit,
            "daily_pct": round(self.daily_used / self.daily_limit, 4) if self.daily_limit > 0 else 0.0,
            "monthly_used": self.monthly_used,
            "monthly_limit": self.monthly_limit,
            "monthly_pct": round(self.monthly_used / self.monthly_limit, 4) if self.monthly_limit > 0 else 0.0,
        }


_BUDGET_USED = """
SELECT COALESCE(SUM(cost) FILTER (WHERE called_at >= day_start), 0)::bigint AS daily_used,
       COALESCE(SUM(cost), 0)::bigint AS monthly_used
  FROM (SELECT l.called_at, b.day_start,
               CASE WHEN l.status = 'running' AND l.called_at > now() - make_interval(secs => %(ttl)s)
                    THEN GREATEST(l.tokens_reserved, l.tokens_in + l.tokens_out)
                    ELSE l.tokens_in + l.tokens_out END AS cost
          FROM (SELECT date_trunc('day', now() AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s AS day_start,
                       date_trunc('month', now() AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s AS month_start) b
          JOIN biz.ai_call_ledger l ON l.called_at >= b.month_start) x
"""


def budget_status(conn: DictConnection, limits: BudgetLimits) -> BudgetStatus:
    """Tokens used today and this month (in-flight reservations included), against the limits."""
    row = conn.execute(_BUDGET_USED, {"tz": limits.timezone, "ttl": limits.reservation_ttl_s}).fetchone()
    assert row is not None  # an aggregate always returns one row
    return BudgetStatus(int(row["daily_used"]), limits.daily_limit, int(row["monthly_used"]), limits.monthly_limit)


def admit_call(conn: DictConnection, record: CallRecord, limits: BudgetLimits) -> tuple[int, BudgetStatus]:
    """Check the budget and write the call's ledger row in one serialized transaction.

    Returns ``(ledger_id, status)``; the row is ``running`` (reserving tokens) when
    ``status.allowed``, else it is the ``budget_exceeded`` refusal.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_BUDGET_LOCK_ID,))
        status = budget_status(conn, limits)
        if status.allowed:
            return insert_row(conn, record, status="running", reserved=limits.reserve_tokens), status
        refusal = insert_row(
            conn, record, status="budget_exceeded", error_code="budget_exceeded", error_message=status.reason
        )
        return refusal, status
