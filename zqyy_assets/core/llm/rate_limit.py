"""The rate limit guard, one token bucket per app (``biz.ai_rate_bucket``).

A bucket of ``burst`` requests refilled at ``per_minute``. One ``UPDATE`` takes a token under
the row lock, so two processes can never both take the last one.
"""

from __future__ import annotations

from dataclasses import dataclass

from zqyy_assets.core.db import DictConnection


@dataclass(frozen=True)
class RateSettings:
    per_minute: float = 60.0  # sustained requests a minute, per app
    burst: int = 10  # bucket capacity
    max_wait_s: float = 10.0  # wait this long for a token before refusing


_TAKE = """
WITH now_ AS (SELECT clock_timestamp() AS t)
UPDATE biz.ai_rate_bucket b
   SET tokens = LEAST(%(cap)s, b.tokens + EXTRACT(EPOCH FROM n.t - b.refilled_at)::float8 * %(rate)s) - 1,
       refilled_at = n.t
  FROM now_ n
 WHERE b.bucket_key = %(key)s
   AND LEAST(%(cap)s, b.tokens + EXTRACT(EPOCH FROM n.t - b.refilled_at)::float8 * %(rate)s) >= 1
RETURNING b.tokens
"""


def rate_try_acquire(conn: DictConnection, key: str, settings: RateSettings) -> float:
    """Take one token; returns 0.0 when taken, else the seconds until one will be there."""
    rate = settings.per_minute / 60.0
    params = {"key": key, "cap": float(settings.burst), "rate": rate}
    # The usual case in one statement (the row lock held for it alone): a token taken.
    if conn.execute(_TAKE, params).fetchone() is not None:
        return 0.0
    with conn.transaction():
        conn.execute(
            """INSERT INTO biz.ai_rate_bucket (bucket_key, tokens, refilled_at)
               VALUES (%(key)s, %(cap)s, clock_timestamp()) ON CONFLICT (bucket_key) DO NOTHING""",
            params,
        )
        taken = conn.execute(_TAKE, params).fetchone()
        if taken is not None:
            return 0.0
        level = conn.execute(
            """SELECT LEAST(%(cap)s, tokens + EXTRACT(EPOCH FROM clock_timestamp() - refilled_at)::float8 * %(rate)s)
                      AS tokens
                 FROM biz.ai_rate_bucket WHERE bucket_key = %(key)s""",
            params,
        ).fetchone()
    if rate <= 0:
        return float("inf")
    tokens = float(level["tokens"]) if level else 0.0
    return max((1.0 - tokens) / rate, 0.001)
