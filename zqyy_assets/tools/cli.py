"""The ``zqyy`` command: database, demo data, imports and the demo runner.

Each subcommand delegates to the module that owns the job; this file only parses arguments.
"""

from __future__ import annotations

import argparse
import sys

from zqyy_assets.core import db, embedded_pg
from zqyy_assets.core.migrations import prepare_databases


def _server_url() -> str:
    """DATABASE_URL's server when set, else the embedded server (started if needed)."""
    return embedded_pg.app_database_url()[0]


def cmd_db_up(args: argparse.Namespace) -> None:
    app_url = _server_url()
    applied = prepare_databases(app_url)
    if args.print_env:
        print(f"export DATABASE_URL='{app_url}'")
        print(f"export DAGSTER_PG_URL='{db.dagster_storage_url(app_url)}'")
    else:
        print(f"database ready: {app_url} (migrations applied now: {applied or 'none'})", file=sys.stderr)


def cmd_db_down(args: argparse.Namespace) -> None:
    print("stopped" if embedded_pg.stop("demo") else "not running")


def cmd_demo(args: argparse.Namespace) -> None:
    from zqyy_assets.tools.demo import run_demo

    sys.exit(
        run_demo(
            sites=args.sites,
            days=args.days,
            seed=args.seed,
            host=args.host,
            dagster_port=args.dagster_port,
            api_port=args.api_port,
            serve=not args.no_serve,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zqyy", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("db-up", help="start the embedded Postgres (unless DATABASE_URL is set) and migrate")
    p.add_argument("--print-env", action="store_true", help="print shell exports for DATABASE_URL and DAGSTER_PG_URL")
    p.set_defaults(func=cmd_db_up)

    p = sub.add_parser("db-down", help="stop the embedded Postgres")
    p.set_defaults(func=cmd_db_down)
    p = sub.add_parser("demo", help="bring up Postgres, the demo venue, DWS, the Dagster UI and the API")
    p.add_argument("--sites", type=int, default=2)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--dagster-port", type=int, default=3000)
    p.add_argument("--api-port", type=int, default=8000)
    p.add_argument("--no-serve", action="store_true", help="prepare data and DWS, then exit")
    p.set_defaults(func=cmd_demo)

    ods_commands.register(sub)

    from zqyy_assets.tools.live_traffic import (
        add_command as add_live_traffic,  # no Dagster import
    )

    add_live_traffic(sub, _server_url)
    from zqyy_assets.tools.token_commands import (
        add_parser as add_token_parser,  # the API's tokens: api/cli_tokens.py
    )

    add_token_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
