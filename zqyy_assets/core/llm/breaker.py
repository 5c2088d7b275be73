"""The circuit breaker guard, one per app (``biz.ai_circuit_breaker``).

``closed`` until ``failure_threshold`` consecutive failed calls, then ``open`` for
``cooldown_s``; the first call after the cool-down is the single ``half_open`` probe (others are
refused while it runs); a success closes the breaker, a failure opens it again. A failed *call*
counts once, however many attempts its retries took. Postgres' clock is the one clock, so
every process (run workers, the API) sees the same breaker.
"""

from __future__ import annotations

from dataclasses import dataclass

from zqyy_assets.core.db import DictConnection


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


def breaker_check(conn: DictConnection, app_name: str, settings: BreakerSettings) -> BreakerDecision:
    # A closed breaker (nearly every call) is one read, no lock: every call of an app locking its
    # one row serialized the whole chain's prewarm. Only an open or half-open one is decided
    # under the row lock (one probe at a time).
    seen = conn.execute("SELECT state FROM biz.ai_circuit_breaker WHERE app_name = %s", (app_name,)).fetchone()
    if seen is not None and seen["state"] == "closed":
        return BreakerDecision(True, "closed")
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
        assert row is not None  # inserted above when missing
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


def breaker_success(conn: DictConnection, app_name: str) -> None:
    # Already clean (the usual case): nothing to write, no row lock taken.
    with conn.transaction():
        conn.execute(
            """UPDATE biz.ai_circuit_breaker
                  SET state = 'closed', consecutive_failures = 0, opened_at = NULL, probe_started_at = NULL,
                      last_error_code = NULL, updated_at = clock_timestamp()
                WHERE app_name = %s
                  AND NOT (state = 'closed' AND consecutive_failures = 0 AND opened_at IS NULL
                           AND probe_started_at IS NULL AND last_error_code IS NULL)""",
            (app_name,),
        )


def breaker_failure(conn: DictConnection, app_name: str, settings: BreakerSettings, error_code: str | None) -> str:
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
        return str(row["state"]) if row else "closed"


def breaker_release_probe(conn: DictConnection, app_name: str) -> None:
    """A probe refused by a later guard never ran: let the next call probe instead."""
    with conn.transaction():
        conn.execute(
            "UPDATE biz.ai_circuit_breaker SET probe_started_at = NULL WHERE app_name = %s AND state = 'half_open'",
            (app_name,),
        )
