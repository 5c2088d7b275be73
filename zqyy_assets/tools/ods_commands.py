"""``zqyy`` subcommands for ODS data: the demo venue generator and CSV import / export.

``register(subparsers)`` is called from ``zqyy_assets.tools.cli.build_parser``. The database is the
one ``zqyy db-up`` prepared (``DATABASE_URL``, else the embedded demo server).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from typing import NoReturn
from zoneinfo import ZoneInfo

import psycopg

from zqyy_assets.core import db, embedded_pg
from zqyy_assets.core.settings import VenueSettings


def _database_url() -> str:
    """The app database, checked to be reachable and migrated, so a command fails with advice."""
    url, _ = embedded_pg.app_database_url()
    try:
        with db.connect(url) as conn:
            ready = conn.execute("SELECT to_regclass('ods.sites') IS NOT NULL AS ok").fetchone()["ok"]
    except psycopg.OperationalError as exc:
        _fail(f"cannot connect to the database ({exc}); run `zqyy db-up` first")
    if not ready:
        _fail("the ODS schema is missing; run `zqyy db-up` to create and migrate the database")
    return url


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def _print_counts(counts: dict[str, int]) -> None:
    width = max(map(len, counts))
    for table, n in counts.items():
        print(f"{table:<{width}}  {n:>9,}")


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def cmd_demo_generate(args: argparse.Namespace) -> None:
    from zqyy_assets.tools.demo_venue import SitesExistError, generate_demo_venue

    venue = VenueSettings()
    try:
        counts = generate_demo_venue(
            _database_url(),
            sites=args.sites,
            days=args.days,
            seed=args.seed,
            end_date=args.end_date or datetime.now(ZoneInfo(venue.venue_timezone)).date(),
            timezone=venue.venue_timezone,
            cutoff_hours=venue.business_day_cutoff_hours,
            show_progress=not args.no_progress,
            replace=args.replace,
            first_site_id=args.first_site_id,
        )
    except SitesExistError as exc:
        _fail(str(exc))
    _print_counts(counts)


def cmd_import_csv(args: argparse.Namespace) -> None:
    from zqyy_assets.tools.csv_io import CsvImportError, import_csv

    try:
        counts = import_csv(_database_url(), args.directory, timezone=VenueSettings().venue_timezone)
    except CsvImportError as exc:
        print(f"import rejected, nothing was loaded ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        sys.exit(1)
    _print_counts(counts)


def cmd_export_csv(args: argparse.Namespace) -> None:
    from zqyy_assets.tools.csv_io import export_csv

    venue_timezone = VenueSettings().venue_timezone
    _print_counts(export_csv(_database_url(), args.directory, site_ids=args.site, timezone=venue_timezone))


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo-generate",
        help="write demo venues (realistic ODS data) for whole business days ending at --end-date",
    )
    p.add_argument("--sites", type=_positive, default=2, help="number of sites (default 2)")
    p.add_argument("--days", type=_positive, default=180, help="number of business days (default 180)")
    p.add_argument("--seed", type=int, default=42, help="random seed; same seed and arguments => same rows")
    p.add_argument("--end-date", type=_date, help="last business date (default: today in VENUE_TIMEZONE)")
    p.add_argument("--first-site-id", type=_positive, default=1, help="site ids are FIRST .. FIRST+SITES-1 (default 1)")
    p.add_argument("--replace", action="store_true", help="delete those sites' ODS rows first instead of refusing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=cmd_demo_generate)

    p = subparsers.add_parser(
        "import-csv",
        help="validate and load <table>.csv files from DIR in one transaction (all or nothing)",
    )
    p.add_argument("directory", metavar="DIR")
    p.set_defaults(func=cmd_import_csv)

    p = subparsers.add_parser("export-csv", help="write the ODS tables as <table>.csv files into DIR")
    p.add_argument("directory", metavar="DIR")
    p.add_argument("--site", type=int, action="append", help="only this site id (repeatable)")
    p.set_defaults(func=cmd_export_csv)
