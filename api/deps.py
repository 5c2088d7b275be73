"""Dependencies shared by the routers, as ``Annotated`` aliases.

Authentication runs as the first sub-dependency of every protected route, so a request with
no valid token gets 401 before anything about it is validated or read.
"""

import time
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import State
from starlette.requests import HTTPConnection

from api import auth
from api.auth_throttle import AuthThrottle
from api.login_tokens import JWT_MAX_LENGTH, LoginTokens, looks_like_jwt
from api.metrics import Metrics
from api.schemas.common import MAX_BIGINT, Location, invalid
from api.services import AsyncConn, Pool, cache_reads
from api.settings import Settings


async def get_conn(request: Request) -> AsyncIterator[AsyncConn]:
    """A pooled connection for one request; the pool lives on the app (built in main.lifespan).

    Pool connections are autocommit with dict rows: a read is one round trip, and a write that
    needs more than one statement opens ``conn.transaction()`` itself."""
    async with request.app.state.pool.connection() as conn:
        yield conn


async def get_pool(request: Request) -> Pool:
    """The pool itself, for work that must not pin a connection for its whole length (streams).

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a thread
    hop on every request."""
    return request.app.state.pool


async def app_settings(request: Request) -> Settings:
    """The settings the app started with (``create_app(settings)`` in tests, else the environment)."""
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(app_settings)]


async def get_latest_answers(request: Request) -> cache_reads.LatestAnswers:
    """The app's batcher of latest-answer reads (built in main.lifespan, shared with the fast path)."""
    return request.app.state.latest_answers


async def get_metrics(request: Request) -> Metrics | None:
    """The app's metrics scrape (built in main.lifespan), None when metrics are off."""
    return request.app.state.metrics


MetricsDep = Annotated[Metrics | None, Depends(get_metrics)]
ConnDep = Annotated[AsyncConn, Depends(get_conn)]
PoolDep = Annotated[Pool, Depends(get_pool)]
LatestAnswersDep = Annotated[cache_reads.LatestAnswers, Depends(get_latest_answers)]

_bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <token>`: the platform's login token (a JWT), or one from `zqyy token issue`.",
)


TOO_MANY_FAILURES = "too many invalid tokens from this client; retry later"


async def authenticate(
    state: State, token: str, client: str | None = None, *, count_failure: bool = True
) -> auth.Principal:
    """The principal of a bearer token; raises ``auth.AuthError`` (401 / 403 / 503) for any other,
    and 429 once ``client`` (its address) sent too many refused tokens (``api.auth_throttle``):
    a refused token is counted unless ``count_failure`` is false (the fast path, whose refusals
    go on to the route, which counts them once).

    A login JWT (``api.login_tokens``, when configured) is verified by signature and claims, an
    opaque token looked up on its own short checkout (so routes that wait long, a run or a chat
    reply, pin no connection). Either is then kept in the app's per-process cache
    (``auth.PrincipalCache``, by the token's hash; a JWT never past its expiry). The one place a
    token is verified: ``get_principal``, the WebSocket channels and the latest-answer fast path
    (``api.fast_read``) all call it."""
    throttle: AuthThrottle = state.auth_throttle
    retry_after = throttle.retry_after(client)
    if retry_after is not None:
        raise auth.AuthError(429, TOO_MANY_FAILURES, retry_after)
    try:
        return await _verify(state, token)
    except auth.AuthError as exc:
        if exc.status_code == status.HTTP_401_UNAUTHORIZED and count_failure:
            retry_after = await throttle.failed(state.pool, client)
            if retry_after is not None:
                raise auth.AuthError(429, TOO_MANY_FAILURES, retry_after) from None
        raise


async def _verify(state: State, token: str) -> auth.Principal:
    login: LoginTokens = state.login_tokens
    is_jwt = login.enabled and looks_like_jwt(token)
    if not token or len(token) > (JWT_MAX_LENGTH if is_jwt else auth.MAX_TOKEN_LENGTH):
        raise auth.AuthError(401, "invalid, expired or revoked token")
    token_hash = auth.hash_token(token)
    cache: auth.PrincipalCache = state.principals
    principal = cache.get(token_hash)
    if principal is not None:
        return principal
    if is_jwt:
        principal, expires = await login.verify(token)
        cache.put(token_hash, principal, valid_for_s=expires - time.time())
        return principal
    async with state.pool.connection() as conn:
        principal = await auth.lookup_hash(conn, token_hash)
    if principal is None:
        raise auth.AuthError(401, "invalid, expired or revoked token")
    cache.put(token_hash, principal)
    return principal


async def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> auth.Principal:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing bearer token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    try:
        return await authenticate(request.app.state, credentials.credentials, client_address(request))
    except auth.AuthError as exc:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == status.HTTP_401_UNAUTHORIZED else None
        if exc.retry_after is not None:
            headers = {"Retry-After": str(exc.retry_after)}
        raise HTTPException(exc.status_code, detail=exc.detail, headers=headers) from None


def client_address(connection: HTTPConnection) -> str | None:
    """The client's address as the server sees it (the auth throttle's key)."""
    return connection.client.host if connection.client else None


PrincipalDep = Annotated[auth.Principal, Depends(get_principal)]


async def require_admin(principal: PrincipalDep) -> auth.Principal:
    if not principal.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="admin role required")
    return principal


AdminDep = Annotated[auth.Principal, Depends(require_admin)]


def check_site(principal: auth.Principal, site_id: int | None, where: Location = "query") -> int:
    """The one site this request works on: the one it names (in ``where``), if the token covers it."""
    if site_id is None:
        if len(principal.site_ids) == 1:
            return principal.site_ids[0]
        raise invalid(where, "site_id", f"site_id is required: this token covers sites {list(principal.site_ids)}")
    if site_id not in principal.site_ids:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"this token has no access to site {site_id}")
    return site_id


SiteQuery = Annotated[
    int | None,
    Query(
        ge=1,
        le=MAX_BIGINT,
        description="The site to read. Required when the token covers several sites (else a 422 naming "
        "site_id); may be omitted when it covers one.",
    ),
]


async def resolve_site(principal: PrincipalDep, site_id: SiteQuery = None) -> int:
    return check_site(principal, site_id)


async def resolve_admin_site(principal: AdminDep, site_id: SiteQuery = None) -> int:
    return check_site(principal, site_id)


SiteDep = Annotated[int, Depends(resolve_site)]
AdminSiteDep = Annotated[int, Depends(resolve_admin_site)]


# Date filters name real days of the venue's life; a far-off sentinel is a 422, not an overflow.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)


def check_date_range(date_from: date | None, date_to: date | None) -> None:
    for name, value in (("date_from", date_from), ("date_to", date_to)):
        if value is not None and not (FIRST_DAY <= value <= LAST_DAY):
            raise invalid("query", name, f"{name} must be between {FIRST_DAY} and {LAST_DAY}", str(value))
    if date_from is not None and date_to is not None and date_from > date_to:
        raise invalid("query", "date_from", "date_from must not be after date_to", str(date_from))
