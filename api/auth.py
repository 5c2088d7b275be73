"""Bearer tokens: issued once, stored as a SHA-256 hash, with a role and a set of sites.

- ``admin``: every endpoint, for the sites in its scope.
- ``staff``: the reads, event intake and chat, for the sites in its scope; no ``/api/admin``.

A request names at most one site (``site_id``); a token that does not cover it gets 403. When
the request names none, a single-site token means its site and a multi-site token must say.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import psycopg

Role = Literal["admin", "staff"]
ROLES: tuple[Role, ...] = ("admin", "staff")
TOKEN_PREFIX = "zqyy_"
MAX_TOKEN_LENGTH = 200


@dataclass(frozen=True)
class Principal:
    token_id: int
    subject: str
    role: Role
    site_ids: tuple[int, ...]

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class IssuedToken:
    id: int
    token: str  # shown once; only its hash is stored
    prefix: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


_LOOKUP_SQL = """
    SELECT id, subject, role, site_ids FROM biz.api_tokens
    WHERE token_hash = %s AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
"""


class PrincipalCache:
    """Verified tokens by hash, each for ``ttl_s`` seconds (per process; bounded in size).

    Only successful lookups are kept: an unknown token always goes to the database.
    """

    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            self._entries.pop(token_hash, None)
            return None
        return entry[0]

    def put(self, token_hash: str, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # rare (10,000 live tokens in 10 s); a refill costs one query each
        self._entries[token_hash] = (principal, time.monotonic() + self.ttl_s)


async def lookup_hash(conn: psycopg.AsyncConnection, token_hash: str) -> Principal | None:
    """The live token's principal, or None for an unknown, revoked or expired one."""
    cur = await conn.execute(_LOOKUP_SQL, (token_hash,))
    row = await cur.fetchone()
    if row is None:
        return None
    return Principal(token_id=row["id"], subject=row["subject"], role=row["role"], site_ids=tuple(row["site_ids"]))


# The sync helpers below are for the CLI and tests; they expect a dict-row connection
# (``zqyy_assets.core.db.connect``) and leave committing to the caller.


def issue(
    conn: psycopg.Connection,
    *,
    subject: str,
    role: Role,
    site_ids: list[int],
    note: str = "",
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
        """INSERT INTO biz.api_tokens (token_hash, token_prefix, subject, role, site_ids, note, expires_at)
           VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (hash_token(token), prefix, subject.strip(), role, sorted(set(site_ids)), note, expires_at),
    ).fetchone()
    return IssuedToken(id=row["id"], token=token, prefix=prefix)


def revoke(conn: psycopg.Connection, *, token_id: int | None = None, token: str | None = None) -> int:
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


def list_tokens(conn: psycopg.Connection) -> list[dict]:
    cur = conn.execute(
        """SELECT id, token_prefix, subject, role, site_ids, note, created_at, expires_at, revoked_at
           FROM biz.api_tokens ORDER BY id"""
    )
    return cur.fetchall()
