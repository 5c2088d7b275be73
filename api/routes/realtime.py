"""Realtime channels: ``/ws/ai-alerts/{site_id}`` (alerts, admins) and ``/ws/ai-events/{site_id}``.

One JSON text message per event, the seed's envelope ``{"type", "site_id", "payload",
"created_at", "seq"}`` (:class:`zqyy_assets.core.outbox.Message`). ``seq`` grows per site; a
client reconnecting with ``?since=<seq>`` first gets every message after it still in the
outbox (24 h by default), then live ones.

Auth: the API's bearer tokens (the platform's login JWTs or the opaque ones), in
``Authorization: Bearer``, as the WebSocket subprotocols ``["bearer", "<token>"]`` (the server
answers with ``bearer``), or as ``?token=``. The
connection is accepted and then closed with a code the client can read:

- 4401: no token, or an unknown, revoked, expired or otherwise invalid one;
- 4403: the token does not cover the site; a staff token on the alerts channel; a login
  token of a user not approved (or of a role with no access); a browser
  ``Origin`` not on ``API_CORS_ORIGINS`` (when that is set);
- 1013: the login service's signing keys cannot be fetched just now (try again later);
- 4408: the client read too slowly: its queue (``REALTIME_QUEUE_MAX`` messages) or its unsent
  bytes (``REALTIME_SEND_BUFFER_MAX_BYTES``) filled up: reconnect with ``since``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Path, Query, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from api.auth import AuthError
from api.deps import authenticate, client_address
from api.metrics import WS_SUBSCRIBERS
from api.schemas.common import MAX_BIGINT
from api.services import Pool
from api.services.realtime_hub import RealtimeHub, Subscriber
from api.settings import Settings
from api.ws_frames import frame_writer
from zqyy_assets.core import outbox

router = APIRouter(tags=["realtime"])

CLOSE_UNAUTHORIZED, CLOSE_FORBIDDEN, CLOSE_TOO_SLOW, CLOSE_TOO_MANY_FAILURES = 4401, 4403, 4408, 4429
CLOSE_TRY_AGAIN_LATER = 1013  # the login service's keys cannot be fetched
_CLOSE_CODES = {401: CLOSE_UNAUTHORIZED, 403: CLOSE_FORBIDDEN, 429: CLOSE_TOO_MANY_FAILURES}
SUBPROTOCOL = "bearer"
_REPLAY_PAGE = 500

SiteId = Annotated[int, Path(ge=1, le=MAX_BIGINT)]
Since = Annotated[int | None, Query(ge=0, le=MAX_BIGINT, description="Replay every message after this seq first.")]
Token = Annotated[str | None, Query(description="The bearer token, for clients that cannot set headers.")]


def _token(websocket: WebSocket, query_token: str | None) -> tuple[str | None, str | None]:
    """The token from the header, the subprotocols or the query; and the subprotocol to answer."""
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    subprotocol = SUBPROTOCOL if SUBPROTOCOL in offered else None
    header = websocket.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip(), subprotocol
    if subprotocol is not None:
        after = offered.index(SUBPROTOCOL) + 1
        if after < len(offered):
            return offered[after], subprotocol
    return query_token or None, subprotocol


async def _refusal(websocket: WebSocket, site_id: int, query_token: str | None, alerts_only: bool) -> int | None:
    """The close code this connection gets before any message, or None when it may subscribe."""
    settings: Settings = websocket.app.state.settings
    origin = websocket.headers.get("origin")
    if settings.cors_origins and origin is not None and origin.rstrip("/") not in settings.cors_origins:
        return CLOSE_FORBIDDEN
    token, _ = _token(websocket, query_token)
    if not token:
        return CLOSE_UNAUTHORIZED
    try:
        principal = await authenticate(websocket.app.state, token, client_address(websocket))
    except AuthError as exc:
        return _CLOSE_CODES.get(exc.status_code, CLOSE_TRY_AGAIN_LATER)
    if site_id not in principal.site_ids or (alerts_only and not principal.is_admin):
        return CLOSE_FORBIDDEN
    return None


async def _replay(websocket: WebSocket, pool: Pool, subscriber: Subscriber, since: int) -> None:
    """Every message with since < seq <= the subscriber's floor, in pages, before the live ones."""
    after = since
    while after < subscriber.floor:
        async with pool.connection() as conn:
            cur = await conn.execute(
                outbox.READ_AFTER_SQL,
                {"site_id": subscriber.site_id, "after": after, "upto": subscriber.floor, "limit": _REPLAY_PAGE},
            )
            rows = await cur.fetchall()
        for row in rows:
            message = outbox.Message.from_row(row)
            if message.type in subscriber.types:
                await websocket.send_text(message.text)
        if len(rows) < _REPLAY_PAGE:
            break
        after = rows[-1]["seq"]


async def _send(websocket: WebSocket, pool: Pool, subscriber: Subscriber, since: int | None) -> None:
    """The replay, then what queued meanwhile (through ASGI); then, when the server offers a frame
    writer, the hub writes the live frames itself and this task only waits for an overflow."""
    if since is not None:
        await _replay(websocket, pool, subscriber, since)
    writer = frame_writer(websocket.scope)
    while writer is None or not subscriber.queue.empty():
        message = await subscriber.queue.get()
        await websocket.send_text(message.text)
    subscriber.write_directly(writer)  # no await since the queue was seen empty: nothing slips between
    await subscriber.overflowed.wait()


async def _receive(websocket: WebSocket) -> None:
    """Drain what the client sends (nothing is expected) until it disconnects."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


async def _serve(websocket: WebSocket, site_id: int, since: int | None, token: str | None, alerts_only: bool) -> None:
    _, subprotocol = _token(websocket, token)
    await websocket.accept(subprotocol=subprotocol)
    code = await _refusal(websocket, site_id, token, alerts_only)
    if code is not None:
        await websocket.close(code)
        return
    hub: RealtimeHub = websocket.app.state.realtime
    types = frozenset({outbox.ALERT_CREATED} if alerts_only else outbox.TYPES)
    subscriber = await hub.subscribe(site_id, types, after=since or 0)
    subscribed = WS_SUBSCRIBERS.labels("alerts" if alerts_only else "events", str(site_id))
    subscribed.inc()
    tasks = {
        asyncio.create_task(_send(websocket, websocket.app.state.pool, subscriber, since)),
        asyncio.create_task(_receive(websocket)),
        asyncio.create_task(subscriber.overflowed.wait()),
    }
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        hub.unsubscribe(subscriber)
        subscribed.dec()
        for task in tasks:
            task.cancel()
        # wait, not gather: a gather cancelled meanwhile re-raises a child's bare CancelledError, which
        # the server's (or the test client's) cancel scope does not take for its own and lets escape
        await asyncio.wait(tasks)
    if subscriber.overflowed.is_set() and websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(CLOSE_TOO_SLOW, reason="too slow: reconnect with since")
        return
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if not isinstance(exc, (WebSocketDisconnect, RuntimeError, OSError)):
                raise exc  # type: ignore[misc]


@router.websocket("/ws/ai-alerts/{site_id}")
async def ai_alerts(websocket: WebSocket, site_id: SiteId, since: Since = None, token: Token = None) -> None:
    """``alert_created`` of one site (admins)."""
    await _serve(websocket, site_id, since, token, alerts_only=True)


@router.websocket("/ws/ai-events/{site_id}")
async def ai_events(websocket: WebSocket, site_id: SiteId, since: Since = None, token: Token = None) -> None:
    """Every message of one site: ``alert_created``, ``cache_updated``, ``event_status``."""
    await _serve(websocket, site_id, since, token, alerts_only=False)
