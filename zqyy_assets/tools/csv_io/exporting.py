"""``export_csv``: the ODS tables as ``<table>.csv`` files, in the format the import reads back."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from psycopg import sql

from zqyy_assets.core import db
from zqyy_assets.core.business_date import DEFAULT_TIMEZONE
from zqyy_assets.core.ods_tables import TABLE_SPECS


def export_csv(
    database_url: str,
    directory: str | Path,
    site_ids: Iterable[int] | None = None,
    *,
    timezone: str = DEFAULT_TIMEZONE,
) -> dict[str, int]:
    """Write every ODS table (optionally only some sites) as ``<table>.csv``; returns row counts.

    Timestamps are written in Asia/Shanghai with their offset, rows ordered by primary key.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sites = sorted(int(s) for s in site_ids) if site_ids is not None else None
    counts: dict[str, int] = {}
    with db.transaction(database_url) as conn:
        # One snapshot for all files, so every reference in the export resolves within it.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute("SELECT set_config('TimeZone', %s, true), set_config('DateStyle', 'ISO, YMD', true)", (timezone,))
        for spec in TABLE_SPECS:
            where = sql.SQL("")
            if sites is not None:
                ids = sql.SQL(", ").join(map(sql.Literal, sites)) if sites else sql.SQL("NULL")
                where = sql.SQL("WHERE site_id IN ({})").format(ids)
            cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in spec.columns)
            stmt = sql.SQL(
                "COPY (SELECT {cols} FROM {table} {where} ORDER BY {key}) TO STDOUT (FORMAT csv, HEADER true)"
            ).format(
                cols=cols,
                table=sql.Identifier("ods", spec.name),
                where=where,
                key=sql.SQL(", ").join(map(sql.Identifier, spec.key)),
            )
            with conn.cursor() as cur, open(directory / f"{spec.name}.csv", "wb") as out:
                with cur.copy(stmt) as copy:
                    for chunk in copy:
                        out.write(chunk)
                counts[spec.name] = cur.rowcount
    return counts
