"""The API's bearer-token store (biz.api_tokens): hashing, issue, revoke, list and the lookup.

A token is shown once, when issued; only its SHA-256 is stored, with a role, a set of sites and
an optional nickname (the holder's display name, sent to the chat app).
The CLI (``zqyy token``) and the API share this module: the API runs :data:`LOOKUP_SQL` on
its async connection, the CLI and the tests call the sync helpers on a dict-row connection
(:func:`zqyy_assets.core.db.connect`), which leave committing to the caller.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, LiteralString

from zqyy_assets.core.db import DictConnection

Role = Literal["admin", "staff"]
ROLES: tuple[Role, ...] = ("admin", "staff")
TOKEN_PREFIX = "zqyy_"
MAX_TOKEN_LENGTH = 200

# The live token with this hash: not revoked, not expired.
LOOKUP_SQL: LiteralString = """
    SELECT id, subject, role, site_ids, nickname FROM biz.api_tokens
    WHERE token_hash = %s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
"""


@dataclass(frozen=True)
class IssuedToken:
    id: int
    token: str  # shown once; only its hash is stored
    prefix: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def issue(
    conn: DictConnection,
    *,
    subject: str,
    role: Role,
    site_ids: list[int],
    note: str = "",
    nickname: str = "",
    expires_at: datetime | None = None,
) -> IssuedToken:
    """Store a new token's hash and return the token itself (the only time it exists in clear)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not subject.strip():
        raise ValueError("subject must not be empty")
    if not site_ids or any(s <= 0 for s in site_ids):
        raise ValueError("a token needs at least one site id, each a positive integer")
    token = new_token()
    prefix = token[: len(TOKEN_PREFIX) + 6]
    row = conn.execute(
        """INSERT INTO biz.api_tokens (token_hash, token_prefix, subject, role, site_ids, note, nickname, expires_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (hash_token(token), prefix, subject.strip(), role, sorted(set(site_ids)), note, nickname.strip(), expires_at),
    ).fetchone()
    assert row is not None  # INSERT ... RETURNING always returns the row
    return IssuedToken(id=row["id"], token=token, prefix=prefix)


def revoke(conn: DictConnection, *, token_id: int | None = None, token: str | None = None) -> int:
    """Revoke by id or by the token itself; the number of tokens revoked now (0 or 1)."""
    if (token_id is None) == (token is None):
        raise ValueError("give exactly one of token_id or token")
    if token_id is not None:
        cur = conn.execute(
            "UPDATE biz.api_tokens SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (token_id,)
        )
    else:
        cur = conn.execute(
            "UPDATE biz.api_tokens SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
            (hash_token(token or ""),),
        )
    return cur.rowcount


def list_tokens(conn: DictConnection) -> list[dict[str, Any]]:
    """Every token, newest last: prefixes and states only (the tokens themselves are not stored)."""
    return conn.execute(
        """SELECT id, token_prefix, subject, role, site_ids, nickname, note, created_at, expires_at, revoked_at
           FROM biz.api_tokens ORDER BY id"""
    ).fetchall()
