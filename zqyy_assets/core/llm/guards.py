"""Guards before every LLM call, and the call ledger, all in Postgres.

Run processes (Dagster's run workers) and the API all call the LLM, so a guard held in memory
would only see its own process. Each guard is a short transaction on ``biz`` tables
(migration ``0003_llm.sql``), with Postgres' clock as the one clock:

- **Circuit breaker** per app (``biz.ai_circuit_breaker``): ``closed`` until
  ``failure_threshold`` consecutive failed calls, then ``open`` for ``cooldown_s``; the first
  call after the cool-down is the single ``half_open`` probe (others are refused while it runs);
  a success closes the breaker, a failure opens it again. A failed *call* counts once, however
  many attempts its retries took.
- **Rate limit** per app (``biz.ai_rate_bucket``): a token bucket of ``capacity`` requests
  refilled at ``rate_per_s``. One ``UPDATE`` takes a token under the row lock, so two
  processes can never both take the last one.
- **Token budget** (daily and monthly, all sites together, over ``biz.ai_call_ledger``): the
  check and the insert of the call's ledger row happen in one transaction under an advisory
  lock. An admitted call's row is ``running`` and reserves ``reserve_tokens`` until it ends, so
  a racing process sees it. A call is refused once used + reserved reaches the limit; a call
  admitted just below the limit may overrun it by its own size, so N racing callers overrun by
  at most one call each.

Every call writes exactly one ledger row: ``running`` then ``success``/``failed``, or directly
one of the refusals ``circuit_open``, ``rate_limited``, ``budget_exceeded``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

_BUDGET_LOCK_ID = 7_240_301  # project-wide advisory lock id for budget admission
REFUSAL_STATUSES = ("circuit_open", "rate_limited", "budget_exceeded")


@dataclass(frozen=True)
class CallRecord:
    """What the ledger knows about a call before it is made."""

    site_id: int
    app_name: str
    app_id: str | None
    provider: str
    request_prompt: str
    prompt_version: str | None = None
    model: str | None = None
    session_id: str | None = None
    dagster_run_id: str | None = None
    trigger_type: str = "event"
    target_id: str | None = None
    streamed: bool = False


_INSERT = """
INSERT INTO biz.ai_call_ledger
    (site_id, app_name, app_id, provider, model, status, error_code, error_message,
     tokens_reserved, request_prompt, session_id, prompt_version, dagster_run_id,
     trigger_type, target_id, streamed, finished_at)
VALUES
    (%(site_id)s, %(app_name)s, %(app_id)s, %(provider)s, %(model)s, %(status)s, %(error_code)s,
     %(error_message)s, %(tokens_reserved)s, %(request_prompt)s, %(session_id)s, %(prompt_version)s,
     %(dagster_run_id)s, %(trigger_type)s, %(target_id)s, %(streamed)s,
     CASE WHEN %(status)s = 'running' THEN NULL ELSE clock_timestamp() END)
RETURNING id
"""


def _insert(
    conn: psycopg.Connection,
    record: CallRecord,
    *,
    status: str,
    reserved: int = 0,
    error_code: str | None = None,
    error_message: str | None = None,
) -> int:
    row = conn.execute(
        _INSERT,
        {
            **record.__dict__,
            "status": status,
            "error_code": error_code,
            "error_message": error_message,
            "tokens_reserved": reserved,
        },
    ).fetchone()
    return int(_first(row))


def _first(row: Any) -> Any:
    if row is None:
        return None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def record_refusal(conn: psycopg.Connection, record: CallRecord, reason: str, message: str) -> int:
    """One ledger row for a call a guard refused."""
    if reason not in REFUSAL_STATUSES:
        raise ValueError(f"not a refusal status: {reason}")
    with conn.transaction():
        return _insert(conn, record, status=reason, error_code=reason, error_message=message)


def record_failure_before_send(conn: psycopg.Connection, record: CallRecord, code: str, message: str) -> int:
    """One ``failed`` ledger row for a call stopped before any request (configuration, request cap)."""
    with conn.transaction():
        return _insert(conn, record, status="failed", error_code=code, error_message=message)


def record_running(conn: psycopg.Connection, record: CallRecord) -> int:
    """A ``running`` row outside the budget (the offline provider costs nothing)."""
    with conn.transaction():
        return _insert(conn, record, status="running")


def finish_call(
    conn: psycopg.Connection,
    ledger_id: int,
    *,
    status: str,
    tokens_in: int = 0,
    tokens_out: int = 0,
    latency_ms: int | None = None,
    attempts: int = 0,
    response_text: str | None = None,
    session_id: str | None = None,
    request_id: str | None = None,
    model: str | None = None,
    error_code: str | None = None,
    error_message: str | None = None,
) -> None:
    if status not in ("success", "failed"):
        raise ValueError(f"a finished call is success or failed, not {status}")
    with conn.transaction():
        conn.execute(
            """
            UPDATE biz.ai_call_ledger
               SET status = %(status)s, tokens_in = %(tokens_in)s, tokens_out = %(tokens_out)s,
                   tokens_reserved = 0, latency_ms = %(latency_ms)s, attempts = %(attempts)s,
                   response_text = %(response_text)s, session_id = COALESCE(%(session_id)s, session_id),
                   request_id = %(request_id)s, model = COALESCE(%(model)s, model),
                   error_code = %(error_code)s, error_message = %(error_message)s,
                   finished_at = clock_timestamp()
             WHERE id = %(id)s
            """,
            {
                "id": ledger_id,
                "status": status,
                "tokens_in": tokens_in,
                "tokens_out": tokens_out,
                "latency_ms": latency_ms,
                "attempts": attempts,
                "response_text": response_text,
                "session_id": session_id,
                "request_id": request_id,
                "model": model or None,
                "error_code": error_code,
                "error_message": error_message,
            },
        )


def reject_answer(conn: psycopg.Connection, ledger_id: int, reason: str) -> bool:
    """A call that succeeded but whose answer the caller could not use (outside its schema)
    is booked as failed: the dashboard's success rate and the request cap per answer count it
    as what it was. Its tokens were spent and stay counted against the budget."""
    with conn.transaction():
        cur = conn.execute(
            """UPDATE biz.ai_call_ledger SET status = 'failed', error_code = 'InvalidAnswer', error_message = %s
               WHERE id = %s AND status = 'success'""",
            (reason, ledger_id),
        )
    return cur.rowcount == 1


def failed_attempts_for_answer(
    conn: psycopg.Connection, *, dagster_run_id: str, app_name: str, site_id: int, target_id: str | None
) -> int:
    """Requests already spent on this answer in this run since its last success.

    A Dagster step retry re-runs the asset in the same run; counting the attempts its earlier
    tries spent keeps one answer under the request cap whatever the RetryPolicy says.
    """
    row = conn.execute(
        """
        SELECT COALESCE(SUM(attempts), 0) AS spent
          FROM biz.ai_call_ledger l
         WHERE l.dagster_run_id = %(run)s AND l.app_name = %(app)s AND l.site_id = %(site)s
           AND l.target_id IS NOT DISTINCT FROM %(target)s AND l.status = 'failed'
           AND l.id > COALESCE((SELECT max(s.id) FROM biz.ai_call_ledger s
                                 WHERE s.dagster_run_id = %(run)s AND s.app_name = %(app)s
                                   AND s.site_id = %(site)s AND s.target_id IS NOT DISTINCT FROM %(target)s
                                   AND s.status = 'success'), 0)
        """,
        {"run": dagster_run_id, "app": app_name, "site": site_id, "target": target_id},
    ).fetchone()
    return int(_first(row) or 0)


# ---------------------------------------------------------------------------------------- budget


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

    def as_dict(self) -> dict:
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


def budget_status(conn: psycopg.Connection, limits: BudgetLimits) -> BudgetStatus:
    """Tokens used today and this month (in-flight reservations included), against the limits."""
    row = conn.execute(_BUDGET_USED, {"tz": limits.timezone, "ttl": limits.reservation_ttl_s}).fetchone()
    daily, monthly = (row["daily_used"], row["monthly_used"]) if isinstance(row, dict) else (row[0], row[1])
    return BudgetStatus(int(daily), limits.daily_limit, int(monthly), limits.monthly_limit)


def admit_call(conn: psycopg.Connection, record: CallRecord, limits: BudgetLimits) -> tuple[int, BudgetStatus]:
    """Check the budget and write the call's ledger row in one serialized transaction.

    Returns ``(ledger_id, status)``; the row is ``running`` (reserving tokens) when
    ``status.allowed``, else it is the ``budget_exceeded`` refusal.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_BUDGET_LOCK_ID,))
        status = budget_status(conn, limits)
        if status.allowed:
            return _insert(conn, record, status="running", reserved=limits.reserve_tokens), status
        return (
            _insert(conn, record, status="budget_exceeded", error_code="budget_exceeded", error_message=status.reason),
            status,
        )


# ------------------------------------------------------------------------------- circuit breaker


@dataclass(frozen=True)
class BreakerSettings:
    failure_threshold: int = 5
    cooldown_s: float = 60.0
    probe_timeout_s: float = 600.0  # a half-open probe silent this long (a crashed worker) is replaced


@dataclass(frozen=True)
class BreakerDecision:
    allowed: bool
    state: str
    probe: bool = False  # this call is the half-open probe
    retry_after_s: float | None = None


def breaker_check(conn: psycopg.Connection, app_name: str, settings: BreakerSettings) -> BreakerDecision:
    with conn.transaction():
        conn.execute(
            "INSERT INTO biz.ai_circuit_breaker (app_name) VALUES (%s) ON CONFLICT (app_name) DO NOTHING",
            (app_name,),
        )
        row = conn.execute(
            """
            SELECT state,
                   EXTRACT(EPOCH FROM clock_timestamp() - opened_at)::float8 AS open_for_s,
                   EXTRACT(EPOCH FROM clock_timestamp() - probe_started_at)::float8 AS probing_for_s
              FROM biz.ai_circuit_breaker WHERE app_name = %s FOR UPDATE
            """,
            (app_name,),
        ).fetchone()
        state = row["state"]
        if state == "closed":
            return BreakerDecision(True, "closed")
        if state == "open":
            open_for = row["open_for_s"] or 0.0
            if open_for < settings.cooldown_s:
                return BreakerDecision(False, "open", retry_after_s=settings.cooldown_s - open_for)
        elif row["probing_for_s"] is not None and row["probing_for_s"] < settings.probe_timeout_s:
            return BreakerDecision(False, "half_open", retry_after_s=settings.cooldown_s)
        conn.execute(
            """UPDATE biz.ai_circuit_breaker
                  SET state = 'half_open', probe_started_at = clock_timestamp(), updated_at = clock_timestamp()
                WHERE app_name = %s""",
            (app_name,),
        )
        return BreakerDecision(True, "half_open", probe=True)


def breaker_success(conn: psycopg.Connection, app_name: str) -> None:
    with conn.transaction():
        conn.execute(
            """UPDATE biz.ai_circuit_breaker
                  SET state = 'closed', consecutive_failures = 0, opened_at = NULL, probe_started_at = NULL,
                      last_error_code = NULL, updated_at = clock_timestamp()
                WHERE app_name = %s""",
            (app_name,),
        )


def breaker_failure(conn: psycopg.Connection, app_name: str, settings: BreakerSettings, error_code: str | None) -> str:
    """Count one failed call; returns the state after it."""
    with conn.transaction():
        row = conn.execute(
            """
            UPDATE biz.ai_circuit_breaker
               SET consecutive_failures = consecutive_failures + 1,
                   state = CASE WHEN state = 'half_open' OR consecutive_failures + 1 >= %(threshold)s
                                THEN 'open' ELSE state END,
                   opened_at = CASE WHEN state = 'half_open' OR consecutive_failures + 1 >= %(threshold)s
                                    THEN clock_timestamp() ELSE opened_at END,
                   probe_started_at = NULL, last_error_code = %(code)s, updated_at = clock_timestamp()
             WHERE app_name = %(app)s
            RETURNING state
            """,
            {"threshold": settings.failure_threshold, "code": error_code, "app": app_name},
        ).fetchone()
        return row["state"] if row else "closed"


def breaker_release_probe(conn: psycopg.Connection, app_name: str) -> None:
    """A probe refused by a later guard never ran: let the next call probe instead."""
    with conn.transaction():
        conn.execute(
            "UPDATE biz.ai_circuit_breaker SET probe_started_at = NULL WHERE app_name = %s AND state = 'half_open'",
            (app_name,),
        )


@dataclass(frozen=True)
class BreakerState:
    app_name: str
    state: str
    consecutive_failures: int
    opened_at: datetime | None
    last_error_code: str | None


def breaker_states(conn: psycopg.Connection) -> list[BreakerState]:
    """Every app's breaker, for the admin dashboard's app health."""
    rows = conn.execute(
        """SELECT app_name, state, consecutive_failures, opened_at, last_error_code
             FROM biz.ai_circuit_breaker ORDER BY app_name"""
    ).fetchall()
    return [BreakerState(**row) for row in rows]


# ------------------------------------------------------------------------------------ rate limit


@dataclass(frozen=True)
class RateSettings:
    per_minute: float = 60.0  # sustained requests a minute, per app
    burst: int = 10  # bucket capacity
    max_wait_s: float = 10.0  # wait this long for a token before refusing


def rate_try_acquire(conn: psycopg.Connection, key: str, settings: RateSettings) -> float:
    """Take one token; returns 0.0 when taken, else the seconds until one will be there."""
    rate = settings.per_minute / 60.0
    params = {"key": key, "cap": float(settings.burst), "rate": rate}
    with conn.transaction():
        conn.execute(
            """INSERT INTO biz.ai_rate_bucket (bucket_key, tokens, refilled_at)
               VALUES (%(key)s, %(cap)s, clock_timestamp()) ON CONFLICT (bucket_key) DO NOTHING""",
            params,
        )
        row = conn.execute(
            """
            WITH now_ AS (SELECT clock_timestamp() AS t)
            UPDATE biz.ai_rate_bucket b
               SET tokens = LEAST(%(cap)s, b.tokens + EXTRACT(EPOCH FROM n.t - b.refilled_at)::float8 * %(rate)s) - 1,
                   refilled_at = n.t
              FROM now_ n
             WHERE b.bucket_key = %(key)s
               AND LEAST(%(cap)s, b.tokens + EXTRACT(EPOCH FROM n.t - b.refilled_at)::float8 * %(rate)s) >= 1
            RETURNING b.tokens
            """,
            params,
        ).fetchone()
        if row is not None:
            return 0.0
        level = conn.execute(
            """SELECT LEAST(%(cap)s, tokens + EXTRACT(EPOCH FROM clock_timestamp() - refilled_at)::float8 * %(rate)s)
                      AS tokens
                 FROM biz.ai_rate_bucket WHERE bucket_key = %(key)s""",
            params,
        ).fetchone()["tokens"]
    if rate <= 0:
        return float("inf")
    return max((1.0 - float(level)) / rate, 0.001)
