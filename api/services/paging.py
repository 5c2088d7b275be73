"""Filtered, paginated listings: the back office's lists (alerts, event jobs, run logs) and the
cache invalidation filter, all composed with ``psycopg.sql`` (no SQL text built by hand)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, LiteralString

from psycopg import sql
from psycopg.rows import DictRow

from api.services import AsyncConn


@dataclass
class Filters:
    """A WHERE clause: conditions joined by AND, with their parameters in order."""

    conditions: list[sql.Composable] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def where(self, condition: LiteralString, *params: Any) -> Filters:
        """A fixed condition (``%s`` placeholders for ``params``)."""
        self.conditions.append(sql.SQL(condition))
        self.params.extend(params)
        return self

    def compare(self, column: str, op: LiteralString, value: Any) -> Filters:
        """``column op value``, or nothing when ``value`` is None (the filter was not asked for)."""
        if value is not None:
            self.conditions.append(sql.SQL("{} {} %s").format(sql.Identifier(column), sql.SQL(op)))
            self.params.append(value)
        return self

    def equals(self, **values: Any) -> Filters:
        for column, value in values.items():
            self.compare(column, "=", value)
        return self

    def clause(self) -> sql.Composed:
        return sql.SQL(" AND ").join(self.conditions or [sql.SQL("true")])


async def page(
    conn: AsyncConn,
    *,
    table: tuple[str, str],
    columns: LiteralString,
    filters: Filters,
    order_by: LiteralString,
    page: int,
    page_size: int,
) -> tuple[list[DictRow], int]:
    """One page of ``table``'s rows matching ``filters`` (pages count from 1), and the total."""
    where = filters.clause()
    count = sql.SQL("SELECT count(*) AS n FROM {} WHERE {}").format(sql.Identifier(*table), where)
    row = await (await conn.execute(count, filters.params)).fetchone()
    total = int(row["n"]) if row else 0
    select = sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT %s OFFSET %s").format(
        sql.SQL(columns), sql.Identifier(*table), where, sql.SQL(order_by)
    )
    cur = await conn.execute(select, [*filters.params, page_size, (page - 1) * page_size])
    return await cur.fetchall(), total
