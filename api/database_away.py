"""The API when its database is away: a prompt 503 with ``Retry-After``, and a pool that heals.

Every route, the latest-answer fast path and the auth lookups reach Postgres through one pool. When
Postgres is stopped or restarting, a request must not hang for the pool's default 30 s nor surface
as a 500: ``DB_POOL_TIMEOUT_S`` bounds the wait for a connection, and any connection error
(``psycopg.OperationalError``, which the pool's ``PoolTimeout`` is too) answers 503. Connections
that died with the server are found on first use; the first such error also asks the pool to check
every idle connection, so after Postgres comes back the next requests get fresh ones instead of
each discovering another dead one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from api.schemas.common import Message, Responses

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
DETAIL = "the database is unavailable; retry shortly"
DATABASE_AWAY: Responses = {
    503: {"model": Message, "description": f"The database is unavailable (`Retry-After: {RETRY_AFTER_S}`)."}
}


def unavailable_response(state: Any, exc: Exception) -> JSONResponse:
    """The 503 answer; the first one of an outage also starts a check of the pool's idle connections."""
    task = getattr(state, "pool_check", None)
    pool = getattr(state, "pool", None)
    if pool is not None and (task is None or task.done()):
        log.warning("database unavailable (%s: %s); checking the pool's connections", type(exc).__name__, exc)
        state.pool_check = asyncio.get_running_loop().create_task(_check(pool))
    return JSONResponse(status_code=503, content={"detail": DETAIL}, headers={"Retry-After": str(RETRY_AFTER_S)})


async def _check(pool: Any) -> None:
    try:
        await pool.check()  # drops the idle connections that fail a round trip; the pool refills itself
    except Exception:
        log.warning("checking the pool's connections failed", exc_info=True)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Exception handler for ``psycopg.OperationalError`` raised by any route or dependency."""
    return unavailable_response(request.app.state, exc)
