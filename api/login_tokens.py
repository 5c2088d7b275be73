"""The platform's login tokens: JWTs its auth service issues to the mini-program and the admin web.

The old backend took the caller from the platform's login (user id, site, role, nickname, and
``require_approved()``); this API accepts the same tokens next to its own opaque ones:

- **HS256** with the shared secret (``ZQYY_AUTH_JWT_SECRET``), **RS256 / ES256** with the public
  keys of a JWKS URL (``ZQYY_AUTH_JWKS_URL``), chosen by the token's ``alg``; a key from the
  JWKS verifies only with its own algorithm (PyJWT binds it), so an HS256 token can never be
  checked against a public key.
- ``exp`` is required and honoured; issuer and audience are checked when set.
- Claims (names are settings): the user id (``sub``), ``site_id`` or a ``site_ids`` list,
  ``role`` (mapped to ``admin`` / ``staff``), ``nickname``, ``status`` (``approved`` required:
  otherwise 403, as ``require_approved()``).

JWKS keys come from PyJWT's ``PyJWKClient``: the key set is cached ``jwks_lifespan_s``; a key id
not in it fetches the set again, at most once per ``jwks_cooldown_s`` (PyJWKClient's cooldown,
which every successful fetch starts), so a rotated key is picked up by its first token while
made-up key ids do not hammer the auth service. The fetch (blocking ``urllib``) runs in a
thread; a key already cached is found without leaving the event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import jwt
from jwt import PyJWK, PyJWKClient

from api.auth import AuthError, Principal
from api.schemas.common import MAX_BIGINT
from api.settings import LoginTokenSettings

JWT_MAX_LENGTH = 8192
HMAC_ALGORITHMS = frozenset({"HS256"})
JWKS_ALGORITHMS = frozenset({"RS256", "ES256"})
NICKNAME_MAX_CHARS = 64


def looks_like_jwt(token: str) -> bool:
    """A compact JWS (three dot-separated parts); the opaque tokens have no dot."""
    return token.count(".") == 2


def _invalid(detail: str) -> AuthError:
    return AuthError(401, detail)


class LoginTokens:
    """Verifies login JWTs into principals. One per app (built in ``main.lifespan``).

    ``clock`` (monotonic seconds) times the pause after a failed JWKS fetch, for tests."""

    def __init__(self, settings: LoginTokenSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.jwks: PyJWKClient | None = None
        if settings.jwks_url:
            self.jwks = PyJWKClient(
                settings.jwks_url,
                cache_jwk_set=True,
                lifespan=settings.jwks_lifespan_s,
                timeout=settings.jwks_timeout_s,
                cooldown_duration=settings.jwks_cooldown_s,
            )
        self._fetch_failed_at: float | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    async def verify(self, token: str) -> tuple[Principal, float]:
        """The token's principal and its expiry (epoch seconds); raises :class:`AuthError`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("malformed token") from None
        alg = header.get("alg")
        key: PyJWK | str
        if alg in HMAC_ALGORITHMS and self.settings.jwt_secret is not None:
            key = self.settings.jwt_secret.get_secret_value()
        elif alg in JWKS_ALGORITHMS and self.jwks is not None:
            key = await self._signing_key(header.get("kid"))
        else:
            raise _invalid(f"tokens signed with {alg!r} are not accepted here")
        settings = self.settings
        audiences = settings.audiences
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audiences or None,
                issuer=settings.jwt_issuer,
                leeway=settings.jwt_leeway_s,
                # The user id may be a number (verify_sub wants a string); it is checked below.
                options={"require": ["exp"], "verify_aud": bool(audiences), "verify_sub": False},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid("token expired") from None
        except jwt.InvalidAudienceError:
            raise _invalid("token audience not accepted") from None
        except jwt.InvalidIssuerError:
            raise _invalid("token issuer not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise _invalid(f"token has no {exc.claim} claim") from None
        except jwt.PyJWTError:
            raise _invalid("invalid token (signature or claims)") from None
        return self.principal(claims), float(claims["exp"])

    def principal(self, claims: dict[str, Any]) -> Principal:
        s = self.settings
        user = claims.get(s.claim_user_id)
        if isinstance(user, bool) or not isinstance(user, (str, int)) or not str(user).strip():
            raise _invalid(f"token has no {s.claim_user_id} claim")
        if s.claim_status and claims.get(s.claim_status) != s.approved_status:
            raise AuthError(403, f"account not approved ({s.claim_status}: {claims.get(s.claim_status)!r})")
        platform_role = claims.get(s.claim_role)
        role = s.role_of(platform_role)
        if role is None:
            raise AuthError(403, f"role {platform_role!r} has no access to this API")
        nickname = claims.get(s.claim_nickname)
        return Principal(
            token_id=None,
            subject=str(user).strip(),
            role=role,
            site_ids=self._sites(claims),
            nickname=nickname.strip()[:NICKNAME_MAX_CHARS] if isinstance(nickname, str) else "",
            platform_role=str(platform_role),
        )

    def _sites(self, claims: dict[str, Any]) -> tuple[int, ...]:
        s = self.settings
        raw = claims.get(s.claim_site_ids)
        if raw is None and claims.get(s.claim_site_id) is not None:
            raw = [claims[s.claim_site_id]]
        if raw is None or raw == []:
            raise AuthError(403, f"token names no site ({s.claim_site_id} or {s.claim_site_ids})")
        sites = []
        for value in raw if isinstance(raw, list) else [None]:
            if isinstance(value, str) and value.isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BIGINT:
                raise _invalid(f"token's {s.claim_site_id} / {s.claim_site_ids} claim is not a site id (list)")
            sites.append(value)
        return tuple(sorted(set(sites)))

    async def _signing_key(self, kid: object) -> PyJWK:
        assert self.jwks is not None
        if not isinstance(kid, str) or not kid:
            raise _invalid("token has no key id (kid)")
        cached = self.jwks.jwk_set_cache.get() if self.jwks.jwk_set_cache is not None else None
        if cached is not None:
            for key in cached.keys:
                if key.key_id == kid and key.public_key_use in ("sig", None):
                    return key
        failed = self._fetch_failed_at
        if failed is not None and self.clock() - failed < self.settings.jwks_cooldown_s:
            # The auth service was just unreachable: do not try again for every request.
            if cached is None:
                raise AuthError(503, "the login service's signing keys cannot be fetched; try again later")
            raise _invalid(f"unknown signing key {kid!r}")
        try:
            # PyJWKClient fetches (when its cache is empty or expired, or once per cooldown for an
            # unknown kid) under its own lock; concurrent callers then find the key cached.
            key = await asyncio.to_thread(self.jwks.get_signing_key, kid)
        except jwt.PyJWKClientConnectionError:
            self._fetch_failed_at = self.clock()
            raise AuthError(503, "the login service's signing keys cannot be fetched; try again later") from None
        except jwt.PyJWTError:
            raise _invalid(f"unknown signing key {kid!r}") from None
        self._fetch_failed_at = None
        return key
