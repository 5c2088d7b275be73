"""The HTTP side every fake shares: a threading server that can end kept-alive connections, and a
handler base with the body plumbing and the ``/_fake/*`` admin routes (script, reset, requests, health)."""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from abc import ABCMeta, abstractmethod
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from zqyy_assets.core.apps import APP_NAMES

if TYPE_CHECKING:
    from zqyy_assets.testing.fake_common.base import ScriptedFake


def split_text(text: str, parts: int) -> list[str]:
    """``text`` in ``parts`` pieces (fewer for a short text; one empty piece for no text)."""
    parts = max(1, min(parts, len(text) or 1))
    size = -(-len(text) // parts) if text else 0
    return [text[i * size : (i + 1) * size] for i in range(parts)] if text else [""]


class FakeHttpServer(ThreadingHTTPServer):
    daemon_threads = True  # keep-alive handler threads never block shutdown
    allow_reuse_address = True
    fake: ScriptedFake

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        """End kept-alive connections, so no client keeps talking to a stopped server."""
        with self._open_lock:
            open_now = list(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away (timed out, or the test is over): nothing to report
        super().handle_error(request, client_address)


class FakeHandler(BaseHTTPRequestHandler, metaclass=ABCMeta):
    """Subclasses implement ``completion(path, body)`` (True when the path was theirs) and
    ``error_body(status, code, message)`` (their service's error JSON)."""

    protocol_version = "HTTP/1.1"
    server: FakeHttpServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the record instead
        return

    @property
    def fake(self) -> ScriptedFake:
        return self.server.fake

    # ---------------------------------------------------------------------------- plumbing

    def read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw.decode("utf-8")) if raw else {}

    def send_json(self, status: int, body: Any, *, close: bool = False) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def send_half_json(self, body: Any) -> None:
        """A 200 whose JSON body breaks off halfway (the connection dropped mid-body)."""
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.abort()

    def start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream;charset=UTF-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def chunk(self, text: str) -> None:
        data = text.encode("utf-8")
        self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
        self.wfile.flush()

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def abort(self) -> None:
        """Close the socket with no goodbye: no response, or no end to the chunked body."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # ------------------------------------------------------------------------------ routes

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        parts = urlsplit(self.path)
        if parts.path == "/_fake/health":
            self.send_json(200, {"ok": True, "apps": list(APP_NAMES)})
        elif parts.path == "/_fake/summary":
            self.send_json(200, self.fake.summary())
        elif parts.path == "/_fake/requests":
            app = parse_qs(parts.query).get("app", [None])[0]
            self.send_json(200, {"requests": self.fake.requests(app)})
        else:
            self.send_json(404, self.error_body(404, "NotFound", f"no route {parts.path}"))

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        try:
            body = self.read_json()
        except (ValueError, UnicodeDecodeError):
            self.send_json(400, self.error_body(400, "InvalidParameter", "body is not JSON"))
            return
        if path == "/_fake/reset":
            self.fake.reset()
            self.send_json(200, {"ok": True})
        elif path == "/_fake/script":
            try:
                self.fake.script(
                    body["app"],
                    body.get("steps", []),
                    latency_ms=body.get("latency_ms"),
                    tokens=body.get("tokens"),
                    usage_shape=body.get("usage_shape"),
                    chunks=body.get("chunks"),
                    answer=body.get("answer"),
                    model=body.get("model"),
                    mix=body.get("mix"),
                    seed=body.get("seed"),
                )
            except (KeyError, TypeError, ValueError) as exc:
                self.send_json(400, {"ok": False, "error": str(exc)})
                return
            self.send_json(200, {"ok": True})
        elif not self.completion(path, body):
            self.send_json(404, self.error_body(404, "NotFound", f"no route {path}"))

    @abstractmethod
    def completion(self, path: str, body: dict) -> bool:
        """Serve the service's own route; False when ``path`` is not one of them."""

    @abstractmethod
    def error_body(self, status: int, code: str | None, message: str | None) -> dict:
        """The service's error JSON."""
