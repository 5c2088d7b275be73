"""Request authentication: who a bearer token is (its principal) and a per-process cache of them.

Two kinds of bearer token name a principal: the project's own opaque tokens (``zqyy token``;
service accounts and the demo) and the platform's login JWTs (``api.login_tokens``), which the
mini-program and the admin web send.

- ``admin``: every endpoint, for the sites in its scope.
- ``staff``: the reads, event intake and chat, for the sites in its scope; no ``/api/admin``.

A request names at most one site (``site_id``); a token that does not cover it gets 403. When
the request names none, a single-site token means its site and a multi-site token must say.

The token store itself (hashing, issue, revoke, list, the lookup statement) is
:mod:`zqyy_assets.core.tokens`, shared with the ``zqyy token`` CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from api.services import AsyncConn
from zqyy_assets.core.tokens import LOOKUP_SQL, MAX_TOKEN_LENGTH, Role, hash_token, issue

# The request side uses MAX_TOKEN_LENGTH, hash_token and Role; `issue` stays importable from here
# for the demo (zqyy_assets/tools/demo.py), which issues its tokens through it.
__all__ = [
    "MAX_TOKEN_LENGTH",
    "AuthError",
    "Principal",
    "PrincipalCache",
    "Role",
    "hash_token",
    "issue",
    "lookup_hash",
]


class AuthError(Exception):
    """A token refused: 401 (missing, malformed, unknown, expired...), 403 (a user not approved,
    a role with no access), 429 (too many bad tokens from this client: ``retry_after`` seconds,
    ``api.auth_throttle``) or 503 (the login service's keys cannot be fetched)."""

    def __init__(self, status_code: int, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.retry_after = retry_after


@dataclass(frozen=True)
class Principal:
    token_id: int | None  # None: a login JWT
    subject: str  # the opaque token's subject, or the login user's id
    role: Role
    site_ids: tuple[int, ...]
    nickname: str = ""
    platform_role: str = ""  # the login token's own role value (e.g. `coach`), when it has one

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def biz_params(self) -> dict[str, str]:
        """Who is asking, as the chat app receives it (the old backend's ``biz_params``)."""
        return {"User_ID": self.subject, "Role": self.platform_role or self.role, "Nickname": self.nickname}


class PrincipalCache:
    """Verified tokens by hash, each for ``ttl_s`` seconds (per process; bounded in size).

    Only successful lookups are kept: an unknown token always goes to the database. ``clock``
    (monotonic seconds) is for tests that step past the TTL without sleeping.
    """

    def __init__(self, ttl_s: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, token_hash: str) -> Principal | None:
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        if entry[1] <= self.clock():
            self._entries.pop(token_hash, None)
            return None
        return entry[0]

    def put(self, token_hash: str, principal: Principal, valid_for_s: float | None = None) -> None:
        """Keep it ``ttl_s``, or less when the token itself expires sooner (``valid_for_s``)."""
        ttl = self.ttl_s if valid_for_s is None else min(self.ttl_s, valid_for_s)
        if ttl <= 0:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # rare (10,000 live tokens in 10 s); a refill costs one verification each
        self._entries[token_hash] = (principal, self.clock() + ttl)


async def lookup_hash(conn: AsyncConn, token_hash: str) -> Principal | None:
    """The live token's principal, or None for an unknown, revoked or expired one."""
    cur = await conn.execute(LOOKUP_SQL, (token_hash,))
    row = await cur.fetchone()
    if row is None:
        return None
    return Principal(
        token_id=row["id"],
        subject=row["subject"],
        role=row["role"],
        site_ids=tuple(row["site_ids"]),
        nickname=row["nickname"],
    )
