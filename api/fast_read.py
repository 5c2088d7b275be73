"""A fast path for the API's hottest read, ``GET /api/ai/cache/{app_type}/{target_id}``.

Measured (bench/bench_api.py, README "Benchmarks"): on this project's 2-core machine FastAPI's
middleware stack, routing and dependency resolution cost more per request than the whole
budget of the read goal (>= 1,000 reads/s with p99 < 50 ms at 64 connections): a FastAPI route
with no dependency at all plus the one query answered ~1,400-1,800 req/s with p99 > 130 ms,
while uvicorn plus the same query answered ~2,200-2,900 req/s with p99 ~40 ms.

So this ASGI middleware answers that one request itself when, and only when, it is a plain
success: a well-formed path and query, a valid bearer token (``api.deps.authenticate``, the
same check and per-process cache as every route, for opaque tokens and login JWTs alike: a
verified JWT is kept by its hash for ``AUTH_CACHE_TTL_S``, bounded, never past its expiry), a site the token covers
(``api.deps.check_site``), a valid target (``check_target``) and a cached answer in Postgres
(``api.routes.cache.latest_answer``, the route's own read). The body is the route's, built by
Postgres. Anything else (no or bad token, another site, a bad app type or target, an extra
query parameter, nothing cached, a value Postgres refuses) goes on to the FastAPI route
unchanged, which answers with its usual 401 / 403 / 404 / 422; a database outage is answered
here with the routes' 503 (``api.database_away``). The route stays declared, so
the OpenAPI document is unchanged; tests compare both paths' answers request by request.
"""

from __future__ import annotations

import re

import psycopg
from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.security.utils import get_authorization_scheme_param
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from api.auth import AuthError
from api.database_away import unavailable_response
from api.deps import authenticate, check_site
from api.metrics import ROUTE_KEY
from api.routes.cache import latest_answer
from api.schemas.common import (
    APP_TYPES,
    MAX_BIGINT,
    TARGET_ID_MAX_LENGTH,
    TARGET_ID_PATTERN,
)

TEMPLATE = "/api/ai/cache/{app_type}/{target_id}"
_PATH = re.compile(r"/api/ai/cache/([^/]+)/([^/]+)")
_TARGET_ID = re.compile(TARGET_ID_PATTERN)
_SITE_QUERY = re.compile(rb"site_id=([1-9][0-9]{0,18})")
_APP_TYPES = frozenset(APP_TYPES)


class LatestAnswerFastPath:
    """Outermost user middleware: a plain-success latest-answer read, else the app as usual."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            match = _PATH.fullmatch(scope["path"])
            if match is not None:
                try:
                    body = await _answer(scope, match[1], match[2])
                except psycopg.OperationalError as exc:  # outside the app's exception handlers
                    await unavailable_response(scope["app"].state, exc)(scope, receive, send)
                    return
                if body is not None:
                    scope[ROUTE_KEY] = TEMPLATE  # the route's template, for the request metrics
                    await Response(content=body, media_type="application/json")(scope, receive, send)
                    return
        await self.app(scope, receive, send)


async def _answer(scope: Scope, app_type: str, target_id: str) -> str | None:
    """The 200 body, or None when the request is anything but a plain success."""
    if app_type not in _APP_TYPES or len(target_id) > TARGET_ID_MAX_LENGTH or not _TARGET_ID.fullmatch(target_id):
        return None
    site_id = None
    if query := scope["query_string"]:
        site = _SITE_QUERY.fullmatch(query)
        if site is None or (site_id := int(site[1])) > MAX_BIGINT:
            return None
    authorization = next((value for name, value in scope["headers"] if name == b"authorization"), None)
    if authorization is None:
        return None
    scheme, token = get_authorization_scheme_param(authorization.decode("latin-1"))
    if scheme.lower() != "bearer":
        return None
    state = scope["app"].state
    try:
        client = scope["client"][0] if scope.get("client") else None
        # A refusal goes on to the route, which answers it and counts it (once) for the throttle.
        principal = await authenticate(state, token, client, count_failure=False)
        return await latest_answer(state.latest_answers, check_site(principal, site_id), app_type, target_id)
    except (AuthError, HTTPException, RequestValidationError, psycopg.DataError):
        return None
