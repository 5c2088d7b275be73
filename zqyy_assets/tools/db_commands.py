"""``zqyy db-up`` / ``zqyy db-down``: the project's PostgreSQL (``DATABASE_URL``, else the embedded server)."""

from __future__ import annotations

import argparse
import sys

from zqyy_assets.core import db, embedded_pg
from zqyy_assets.core.migrations import prepare_databases


def cmd_db_up(args: argparse.Namespace) -> None:
    app_url, _ = embedded_pg.app_database_url()
    applied = prepare_databases(app_url)
    if args.print_env:
        print(f"export DATABASE_URL='{app_url}'")
        print(f"export DAGSTER_PG_URL='{db.dagster_storage_url(app_url)}'")
    else:
        print(f"database ready: {app_url} (migrations applied now: {applied or 'none'})", file=sys.stderr)


def cmd_db_down(args: argparse.Namespace) -> None:
    print("stopped" if embedded_pg.stop("demo") else "not running")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("db-up", help="start the embedded Postgres (unless DATABASE_URL is set) and migrate")
    p.add_argument("--print-env", action="store_true", help="print shell exports for DATABASE_URL and DAGSTER_PG_URL")
    p.set_defaults(func=cmd_db_up)

    p = subparsers.add_parser("db-down", help="stop the embedded Postgres")
    p.set_defaults(func=cmd_db_down)
