"""Repeated bad tokens from one client are slowed down: 429 with ``Retry-After`` past
``AUTH_FAILURES_PER_MINUTE`` failures in a minute, until that minute is over.

A failure is any token :func:`api.deps.authenticate` refuses with 401 (unknown, revoked, expired,
badly signed...), on any path: routes, the latest-answer fast path, the realtime channels. The
client is its address as the server sees it (``request.client.host``; behind a proxy, serve with
uvicorn's ``--proxy-headers`` and ``FORWARDED_ALLOW_IPS`` so it is the real client's).

Shared by every worker and API process: failures are counted in Postgres (``biz.auth_failures``,
one row per client and minute, migration 0019). The worker whose count crosses the limit blocks
the client at once; every worker also reads the blocked clients of the current minute every
``AUTH_THROTTLE_REFRESH_S`` (1 s), so the others follow within that. A blocked client is refused
from memory, before its token is looked at (a right guess is refused too), costing the other
requests nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import LiteralString

from api.services import Pool

log = logging.getLogger(__name__)

# One more failure for this client in the current minute; the count and the seconds left in it.
COUNT_SQL: LiteralString = """
    INSERT INTO biz.auth_failures AS f (client, window_start, failures)
    VALUES (%s, date_trunc('minute', now()), 1)
    ON CONFLICT (client, window_start) DO UPDATE SET failures = f.failures + 1
    RETURNING f.failures, extract(epoch FROM f.window_start + interval '1 minute' - now())::float8 AS left_s
"""
PURGE_SQL: LiteralString = "DELETE FROM biz.auth_failures WHERE window_start < now() - interval '10 minutes'"
# The clients over the limit in the current minute, with the seconds left in it.
BLOCKED_SQL: LiteralString = """
    SELECT client, extract(epoch FROM window_start + interval '1 minute' - now())::float8 AS left_s
    FROM biz.auth_failures WHERE window_start = date_trunc('minute', now()) AND failures > %s
"""


class AuthThrottle:
    """Per worker: the blocked clients (until when, by ``clock``); the counting is in Postgres.
    ``limit`` 0 turns it off."""

    def __init__(self, limit: int, refresh_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.refresh_s = refresh_s
        self.clock = clock
        self._blocked: dict[str, float] = {}
        self._task: asyncio.Task | None = None

    def retry_after(self, client: str | None) -> int | None:
        """Seconds until this client may try again, or None when it is not blocked."""
        if client is None or not self._blocked:
            return None
        until = self._blocked.get(client)
        if until is None:
            return None
        left = until - self.clock()
        if left <= 0:
            self._blocked.pop(client, None)
            return None
        return max(1, math.ceil(left))

    def _block(self, client: str, left_s: float) -> None:
        self._blocked[client] = max(self._blocked.get(client, 0.0), self.clock() + max(left_s, 0.0))

    async def failed(self, pool: Pool, client: str | None) -> int | None:
        """Count a refused token; the Retry-After when this failure is over the limit, else None."""
        if not self.limit or client is None:
            return None
        async with pool.connection() as conn:
            cur = await conn.execute(COUNT_SQL, (client,))
            row = await cur.fetchone()
            assert row is not None  # INSERT ... RETURNING always returns the row
            if row["failures"] == 1:  # a new minute for this client: drop the old minutes
                await conn.execute(PURGE_SQL)
        if row["failures"] <= self.limit:
            return None
        self._block(client, row["left_s"])
        return self.retry_after(client) or 1

    async def refresh(self, pool: Pool) -> None:
        """The blocked clients of this minute, whichever worker counted them."""
        async with pool.connection() as conn:
            cur = await conn.execute(BLOCKED_SQL, (self.limit,))
            for row in await cur.fetchall():
                self._block(row["client"], row["left_s"])

    def start(self, pool: Pool) -> None:
        if self.limit and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refreshing(pool))

    async def _refreshing(self, pool: Pool) -> None:
        while True:
            try:
                await self.refresh(pool)
            except Exception as exc:  # the database is away: this worker keeps what it knows
                log.debug("could not read the blocked clients: %s", exc)
            await asyncio.sleep(self.refresh_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
