"""Shared helpers for the tools tests: ODS row counts and content digests, and running `zqyy` in-process."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager

from psycopg import sql

from tests.databases import cloned_database
from zqyy_assets.core import db
from zqyy_assets.core.ods_tables import SPECS
from zqyy_assets.tools.cli import main


def ods_counts(url: str) -> dict[str, int]:
    with db.connect(url) as conn:
        return {
            t: conn.execute(sql.SQL("SELECT count(*) AS n FROM {}").format(sql.Identifier("ods", t))).fetchone()["n"]
            for t in SPECS
        }


def ods_digests(url: str, site_ids: list[int] | None = None) -> dict[str, str]:
    """md5 of every table's rows (as text, in key order), optionally for some sites only."""
    out = {}
    with db.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        for name, spec in SPECS.items():
            where = sql.SQL("WHERE site_id = ANY(%s)") if site_ids is not None else sql.SQL("")
            query = sql.SQL(
                "SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY {key}), '')) AS d FROM {table} t {where}"
            )
            row = conn.execute(
                query.format(
                    key=sql.SQL(", ").join(map(sql.Identifier, spec.key)),
                    table=sql.Identifier("ods", name),
                    where=where,
                ),
                (site_ids,) if site_ids is not None else None,
            ).fetchone()
            out[name] = row["d"]
    return out


def scratch_db(server_url: str, template: str) -> AbstractContextManager[str]:
    """A fresh migrated database (cloned from the session template) for a module's tests."""
    return cloned_database(server_url, template, prefix="zqyy_t_ods")


def run(argv: list[str]) -> int:
    """``zqyy ARGV`` in this process; its exit code (0 when the command returns normally)."""
    try:
        main(argv)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)  # SystemExit("message"), as Python prints it
        return 1
    return 0
