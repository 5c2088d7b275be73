"""The ``zqyy`` command: database, demo data, imports, the demo runner, tokens and one-off asks.

Each subcommand lives in the module that owns the job and registers itself here; this file
only builds the parser and dispatches. Every command's database is
``zqyy_assets.core.embedded_pg.app_database_url()``: DATABASE_URL, else the embedded server.
"""

from __future__ import annotations

import argparse

from zqyy_assets.tools import ask_command, db_commands, demo, live_traffic, ods_commands, token_commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zqyy", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    db_commands.register(sub)
    demo.register(sub)
    ods_commands.register(sub)
    live_traffic.register(sub)
    token_commands.add_parser(sub)  # the API's bearer tokens
    ask_command.add_parser(sub)  # one app, one target, now
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
