"""CORS for the admin web, which runs in a browser on its own origin.

Starlette's ``CORSMiddleware`` over the one allowlist, ``API_CORS_ORIGINS`` (also the WebSocket
channels' ``Origin`` check): a preflight from an allowed origin is answered (any of the API's
methods, ``Authorization`` and ``Content-Type`` allowed), one from another origin gets 400 with
no ``Access-Control-Allow-Origin``, and responses to an allowed origin carry it. An empty list
adds nothing: no CORS header, and a preflight is the plain 405 it would be without CORS.

The served app reads its settings when it starts (``main.lifespan``), after the middleware stack
is built, so the CORS middleware is made on the first HTTP request from the settings then. It is
the outermost user middleware (outside the latest-answer fast path, whose answers a browser must
be allowed to read too), and a request with no ``Origin`` (no browser) skips it.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from api.settings import Settings

ALLOWED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ALLOWED_HEADERS = ("Authorization", "Content-Type")
PREFLIGHT_MAX_AGE_S = 600


class SettingsCORS:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._cors: ASGIApp | None = None
        self._built = False

    def _build(self, settings: Settings) -> ASGIApp | None:
        if not settings.cors_origins:
            return None
        return CORSMiddleware(
            self.app,
            allow_origins=sorted(settings.cors_origins),
            allow_methods=ALLOWED_METHODS,
            allow_headers=ALLOWED_HEADERS,
            allow_credentials=False,  # bearer tokens, no cookies
            max_age=PREFLIGHT_MAX_AGE_S,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if not self._built:
                self._cors = self._build(scope["app"].state.settings)
                self._built = True
            if self._cors is not None and any(name == b"origin" for name, _ in scope["headers"]):
                await self._cors(scope, receive, send)
                return
        await self.app(scope, receive, send)
