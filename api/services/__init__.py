"""Queries and side effects behind the routers (plain async functions over a psycopg connection)."""

import psycopg
from psycopg.rows import DictRow
from psycopg_pool import AsyncConnectionPool

# The API's pooled connections (built in api.main): autocommit, rows as dicts by column name.
AsyncConn = psycopg.AsyncConnection[DictRow]
Pool = AsyncConnectionPool[AsyncConn]


async def one_row(cur: psycopg.AsyncCursor[DictRow]) -> DictRow:
    """The row of a statement that always returns exactly one (an aggregate, INSERT ... RETURNING)."""
    row = await cur.fetchone()
    if row is None:
        raise LookupError("the statement returned no row")
    return row
