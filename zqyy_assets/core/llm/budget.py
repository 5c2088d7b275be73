"""The budget guard: daily and monthly limits in tokens and in CNY, all sites together, over the ledger.

The check and the insert of the call's ledger row happen in one transaction under an advisory
lock, unless the budget is so far from its limits that every admission that could race this
one fits (``admit_call``'s ``concurrent_admissions``). An admitted call's row is ``running`` and
reserves ``reserve_tokens`` (and their price, ``reserve_cost_cny``) until it ends, so a racing
process sees it. A call is refused once used +
reserved reaches a limit; a call admitted just below the limit may overrun it by its own size,
so N racing callers overrun by at most one call each. The CNY limits are optional (None: none);
a finished row's cost is the ``cost_cny`` the LLM layer priced it at (``core/pricing.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
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
    daily_cost_limit_cny: float | None = None
    monthly_cost_limit_cny: float | None = None
    reserve_cost_cny: float = 0.0  # what the reserved tokens would cost (priced at the fallback model)


@dataclass(frozen=True)
class BudgetStatus:
    daily_used: int
    daily_limit: int
    monthly_used: int
    monthly_limit: int
    daily_cost_cny: float = 0.0
    monthly_cost_cny: float = 0.0
    daily_cost_limit_cny: float | None = None
    monthly_cost_limit_cny: float | None = None

    @property
    def allowed(self) -> bool:
        return self.reason is None

    @property
    def reason(self) -> str | None:
        if self.daily_used >= self.daily_limit:
            return f"daily token budget spent: {self.daily_used} of {self.daily_limit}"
        if self.monthly_used >= self.monthly_limit:
            return f"monthly token budget spent: {self.monthly_used} of {self.monthly_limit}"
        if self.daily_cost_limit_cny is not None and self.daily_cost_cny >= self.daily_cost_limit_cny:
            return f"daily CNY budget spent: {self.daily_cost_cny:.4f} of {self.daily_cost_limit_cny:g} CNY"
        if self.monthly_cost_limit_cny is not None and self.monthly_cost_cny >= self.monthly_cost_limit_cny:
            return f"monthly CNY budget spent: {self.monthly_cost_cny:.4f} of {self.monthly_cost_limit_cny:g} CNY"
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
            "daily_cost_cny": round(self.daily_cost_cny, 6),
            "daily_cost_limit_cny": self.daily_cost_limit_cny,
            "monthly_cost_cny": round(self.monthly_cost_cny, 6),
            "monthly_cost_limit_cny": self.monthly_cost_limit_cny,
        }


# What one ledger row ``l`` holds of the budget: a running call its reservation (or what it has
# used, if more) until the reservation's time-to-live, any other row what it used.
HELD_TOKENS_SQL = """CASE WHEN l.status = 'running' AND l.called_at > now() - make_interval(secs => %(ttl)s)
                        THEN GREATEST(l.tokens_reserved, l.tokens_in + l.tokens_out)
                        ELSE l.tokens_in + l.tokens_out END"""

# Finished calls from the 15-minute slots a trigger keeps (``biz.ai_budget_bucket``, migration
# 0023), running ones (the calls in flight) from the ledger: the cost of one admission no longer
# grows with the month's calls.
BUDGET_USED_SQL = (
    """
WITH b AS (SELECT date_trunc('day', now() AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s AS day_start,
                  date_trunc('month', now() AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s AS month_start),
done AS (
    SELECT COALESCE(SUM(k.tokens) FILTER (WHERE k.bucket_start >= b.day_start), 0) AS daily_tokens,
           COALESCE(SUM(k.tokens), 0) AS monthly_tokens,
           COALESCE(SUM(k.cost_cny) FILTER (WHERE k.bucket_start >= b.day_start), 0) AS daily_cny,
           COALESCE(SUM(k.cost_cny), 0) AS monthly_cny
      FROM b JOIN biz.ai_budget_bucket k ON k.bucket_start >= b.month_start),
running AS (
    SELECT COALESCE(SUM(tokens) FILTER (WHERE called_at >= day_start), 0) AS daily_tokens,
           COALESCE(SUM(tokens), 0) AS monthly_tokens,
           COALESCE(SUM(cny) FILTER (WHERE called_at >= day_start), 0) AS daily_cny,
           COALESCE(SUM(cny), 0) AS monthly_cny
      FROM (SELECT l.called_at, b.day_start, """
    + HELD_TOKENS_SQL
    + """ AS tokens,
                   CASE WHEN l.called_at > now() - make_interval(secs => %(ttl)s)
                        THEN GREATEST(CASE WHEN l.tokens_reserved > 0 THEN %(reserve_cny)s ELSE 0 END,
                                      COALESCE(l.cost_cny, 0))
                        ELSE COALESCE(l.cost_cny, 0) END AS cny
              FROM b JOIN biz.ai_call_ledger l ON l.status = 'running' AND l.called_at >= b.month_start) x)
SELECT (done.daily_tokens + running.daily_tokens)::bigint AS daily_used,
       (done.monthly_tokens + running.monthly_tokens)::bigint AS monthly_used,
       (done.daily_cny + running.daily_cny)::float8 AS daily_cost_cny,
       (done.monthly_cny + running.monthly_cny)::float8 AS monthly_cost_cny
  FROM done, running
"""
)


def budget_params(limits: BudgetLimits) -> dict[str, Any]:
    """The parameters of ``BUDGET_USED_SQL`` (and ``HELD_TOKENS_SQL``)."""
    return {"tz": limits.timezone, "ttl": limits.reservation_ttl_s, "reserve_cny": limits.reserve_cost_cny}


def status_from_row(row: Mapping[str, Any], limits: BudgetLimits) -> BudgetStatus:
    """A ``BUDGET_USED_SQL`` row against the limits."""
    return BudgetStatus(
        int(row["daily_used"]),
        limits.daily_limit,
        int(row["monthly_used"]),
        limits.monthly_limit,
        daily_cost_cny=float(row["daily_cost_cny"]),
        monthly_cost_cny=float(row["monthly_cost_cny"]),
        daily_cost_limit_cny=limits.daily_cost_limit_cny,
        monthly_cost_limit_cny=limits.monthly_cost_limit_cny,
    )


def budget_status(conn: DictConnection, limits: BudgetLimits) -> BudgetStatus:
    """Tokens and CNY used today and this month (in-flight reservations included), against the limits."""
    row = conn.execute(BUDGET_USED_SQL, budget_params(limits)).fetchone()
    assert row is not None  # an aggregate always returns one row
    return status_from_row(row, limits)


def _room_for(status: BudgetStatus, limits: BudgetLimits, calls: int) -> bool:
    """Would ``calls`` more reservations still fit under every limit?"""
    tokens = calls * limits.reserve_tokens
    cny = calls * limits.reserve_cost_cny
    return (
        status.daily_used + tokens < status.daily_limit
        and status.monthly_used + tokens < status.monthly_limit
        and (status.daily_cost_limit_cny is None or status.daily_cost_cny + cny < status.daily_cost_limit_cny)
        and (status.monthly_cost_limit_cny is None or status.monthly_cost_cny + cny < status.monthly_cost_limit_cny)
    )


def admit_call(
    conn: DictConnection, record: CallRecord, limits: BudgetLimits, *, concurrent_admissions: int = 0
) -> tuple[int, BudgetStatus]:
    """Check the budget and write the call's ledger row in one serialized transaction.

    Returns ``(ledger_id, status)``; the row is ``running`` (reserving tokens) when
    ``status.allowed``, else it is the ``budget_exceeded`` refusal.

    ``concurrent_admissions``: at most this many calls can be admitted at once, all processes
    together (the cap on calls in flight: a call holds its slot before it is admitted). While
    that many reservations more would still fit under every limit, the lock is not needed (no
    race can overrun) and the row is written at once; near a limit, admissions serialize.
    """
    if concurrent_admissions > 0:
        status = budget_status(conn, limits)
        if _room_for(status, limits, concurrent_admissions):
            return insert_row(conn, record, status="running", reserved=limits.reserve_tokens), status
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_BUDGET_LOCK_ID,))
        status = budget_status(conn, limits)
        if status.allowed:
            return insert_row(conn, record, status="running", reserved=limits.reserve_tokens), status
        refusal = insert_row(
            conn, record, status="budget_exceeded", error_code="budget_exceeded", error_message=status.reason
        )
        return refusal, status
