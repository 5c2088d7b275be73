"""The soak's security probes, against the running API before the load starts.

- bad tokens from one client address: 401 until ``limit`` failures in the minute, then 429 with
  ``Retry-After``, also for a valid token from that address, while another address is served;
- an expired and a revoked token on a path of every kind (the latest-answer fast path, routes,
  admin, chat, metrics) and on both realtime channels: 401 and close code 4401. Each of these
  requests comes from an address of its own, so that the throttle is not what answers.

Loopback is 127.0.0.0/8: a client picks its address by binding its socket before connecting.
"""

from __future__ import annotations

import http.client
import itertools
import json
import secrets
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from zqyy_assets.testing.soak.checks import Check

PATHS = (
    ("GET", "/api/ai/cache/app3_clue/1"),
    ("GET", "/api/ai/members/1/clues"),
    ("GET", "/api/admin/ai/dashboard"),
    ("GET", "/api/xcx/chat/history"),
    ("POST", "/api/ai/events"),
    ("GET", "/metrics"),
)
CHANNELS = ("/ws/ai-events/{site}", "/ws/ai-alerts/{site}")


def _addresses() -> Iterator[str]:
    for a, b in itertools.product(range(1, 250), range(1, 250)):
        yield f"127.0.{a}.{b}"


def request(api_url: str, source: str, method: str, path: str, token: str) -> tuple[int, str | None]:
    """(status, Retry-After) of one request sent from ``source``."""
    parts = urlsplit(api_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=20, source_address=(source, 0))
    try:
        body = json.dumps({"event_type": "consumption", "site_id": 1, "member_id": 1}) if method == "POST" else None
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, response.getheader("Retry-After")
    finally:
        conn.close()


def ws_close_code(api_url: str, source: str, path: str, token: str) -> int | None:
    parts = urlsplit(api_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=20, source_address=(source, 0))
    url = f"ws://{parts.hostname}:{parts.port}{path}"
    try:
        with connect(url, sock=sock, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=20) as ws:
            try:
                while True:
                    ws.recv(timeout=20)
            except ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None
    except TimeoutError:
        return None


def probe(api_url: str, site: int, tokens: dict[str, str], limit: int) -> tuple[list[Check], list[str]]:
    """The security checks, and the bad tokens sent (the log check looks for them too)."""
    addresses = _addresses()
    flooder = "127.0.0.2"
    bad = ["zqyy_" + secrets.token_urlsafe(32) for _ in range(limit + 3)]
    statuses = [request(api_url, flooder, "GET", "/api/ai/cache/app3_clue/1", token) for token in bad]
    valid_blocked = request(api_url, flooder, "GET", "/api/ai/cache/app3_clue/1", tokens["staff"])
    elsewhere = request(api_url, next(addresses), "GET", "/api/ai/cache/app3_clue/1", tokens["staff"])
    first_429 = next((i for i, (status, _) in enumerate(statuses) if status == 429), None)
    throttled = (
        all(status == 401 for status, _ in statuses[:limit])
        and all(status == 429 and (retry or "").isdigit() and int(retry or 0) > 0 for status, retry in statuses[limit:])
        and valid_blocked[0] == 429
        and elsewhere[0] in (200, 404)
    )
    throttle = Check(
        "repeated bad tokens from one client are slowed down",
        throttled,
        f"limit {limit} a minute: first 429 at failure {None if first_429 is None else first_429 + 1} (Retry-After "
        f"{statuses[-1][1]} s); a valid token from that client {valid_blocked[0]}, from another {elsewhere[0]}",
    )
    refused: dict[str, list[str]] = {"expired": [], "revoked": []}
    for kind in refused:
        for method, path in PATHS:
            status, _ = request(api_url, next(addresses), method, path, tokens[kind])
            if status != 401:
                refused[kind].append(f"{method} {path} -> {status}")
        for channel in CHANNELS:
            code = ws_close_code(api_url, next(addresses), channel.format(site=site), tokens[kind])
            if code != 4401:
                refused[kind].append(f"{channel} -> {code}")
    tried = len(PATHS) + len(CHANNELS)
    refusal = Check(
        "expired and revoked tokens are refused on every path, realtime included",
        not refused["expired"] and not refused["revoked"],
        f"{tried} paths each (HTTP 401, WebSocket 4401); accepted: {refused['expired'] + refused['revoked'] or 'none'}",
    )
    return [throttle, refusal], bad
