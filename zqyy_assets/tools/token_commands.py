"""`zqyy token ...`: issue, list and revoke the API's bearer tokens.

    zqyy token issue --subject 王店长 --role admin --site 1
    zqyy token issue --subject 1024 --role staff --site 1 --nickname 小王
    zqyy token issue --subject assistant-1024 --role staff --site 1 --expires-days 90
    zqyy token list
    zqyy token revoke 7            # by id (from `list`)
    zqyy token revoke --token zqyy_...

The token is printed once, on stdout, and never stored: only its SHA-256 is kept. The
database is DATABASE_URL, else the embedded demo server (as `zqyy db-up`).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

from zqyy_assets.core import tokens
from zqyy_assets.core.settings import DatabaseSettings


def _database_url(args: argparse.Namespace) -> str:
    if args.database_url:
        return args.database_url
    settings = DatabaseSettings()
    if settings.database_url:
        return settings.database_url
    from zqyy_assets.core import db, embedded_pg

    return db.with_database(embedded_pg.start("demo"), db.APP_DATABASE)


def cmd_issue(args: argparse.Namespace) -> int:
    from zqyy_assets.core import db

    expires = datetime.now(UTC) + timedelta(days=args.expires_days) if args.expires_days else None
    try:
        with db.transaction(_database_url(args)) as conn:
            issued = tokens.issue(
                conn,
                subject=args.subject,
                role=args.role,
                site_ids=args.site,
                note=args.note,
                nickname=args.nickname,
                expires_at=expires,
            )
    except ValueError as exc:
        print(f"zqyy token issue: {exc}", file=sys.stderr)
        return 2
    print(issued.token)
    sites = ",".join(map(str, sorted(set(args.site))))
    print(
        f"issued token id {issued.id} ({issued.prefix}...) for {args.subject!r}: role {args.role}, sites {sites}"
        + (f", expires {expires:%Y-%m-%d}" if expires else "")
        + ". It is shown only now.",
        file=sys.stderr,
    )
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from zqyy_assets.core import db

    with db.connect(_database_url(args)) as conn:
        rows = tokens.list_tokens(conn)
    now = datetime.now(UTC)
    for r in rows:
        state = "revoked" if r["revoked_at"] else "expired" if r["expires_at"] and r["expires_at"] <= now else "active"
        sites = ",".join(map(str, r["site_ids"]))
        print(
            f"{r['id']:>5}  {r['token_prefix']}...  {state:<8} {r['role']:<6} sites={sites:<12} {r['subject']}"
            + (f" [{r['nickname']}]" if r["nickname"] else "")
            + (f"  ({r['note']})" if r["note"] else "")
        )
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from zqyy_assets.core import db

    if (args.id is None) == (args.token is None):
        print("zqyy token revoke: give a token id or --token, not both", file=sys.stderr)
        return 2
    with db.transaction(_database_url(args)) as conn:
        count = tokens.revoke(conn, token_id=args.id, token=args.token)
    print("revoked" if count else "no active token matched", file=sys.stderr)
    return 0 if count else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Adds `zqyy token {issue,list,revoke}` to the project's CLI."""
    token = sub.add_parser(
        "token",
        help="issue, list and revoke API bearer tokens",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    token.add_argument("--database-url", help="default: DATABASE_URL, else the embedded demo server")
    actions = token.add_subparsers(dest="token_command", required=True)

    p = actions.add_parser("issue", help="issue a token and print it (once)")
    p.add_argument("--subject", required=True, help="who holds it (a person or a system); owns its chats")
    p.add_argument("--role", required=True, choices=tokens.ROLES)
    p.add_argument("--site", type=int, action="append", required=True, help="a site it may use (repeat for more)")
    p.add_argument("--note", default="", help="free text shown by `list`")
    p.add_argument("--nickname", default="", help="the holder's display name (the chat app receives it)")
    p.add_argument("--expires-days", type=int, default=None, help="default: never expires")
    p.set_defaults(func=lambda a: sys.exit(cmd_issue(a)))

    p = actions.add_parser("list", help="list tokens (prefixes only; tokens are not stored)")
    p.set_defaults(func=lambda a: sys.exit(cmd_list(a)))

    p = actions.add_parser("revoke", help="revoke a token by id or by the token itself")
    p.add_argument("id", type=int, nargs="?", help="the token id shown by `list`")
    p.add_argument("--token", help="the token itself")
    p.set_defaults(func=lambda a: sys.exit(cmd_revoke(a)))
