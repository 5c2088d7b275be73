"""The fake's HTTP side: DashScope's completion route (plain JSON and SSE), errors, and ``/_fake/*``."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from zqyy_assets.core.apps import APP_NAMES, app_for_app_id
from zqyy_assets.testing.fake_dashscope.scripts import AppScript, Step

if TYPE_CHECKING:
    from zqyy_assets.testing.fake_dashscope.server import FakeDashScope

_COMPLETION = re.compile(r"/api/v1/apps/([^/]+)/completion")


def _usage(shape: str, tokens_in: int, tokens_out: int, model: str) -> dict:
    if shape == "flat":
        return {"input_tokens": tokens_in, "output_tokens": tokens_out}
    if shape == "total":
        return {"total_tokens": tokens_in + tokens_out}
    return {"models": [{"model_id": model, "input_tokens": tokens_in, "output_tokens": tokens_out}]}


def _split(text: str, parts: int) -> list[str]:
    parts = max(1, min(parts, len(text) or 1))
    size = -(-len(text) // parts) if text else 0
    return [text[i * size : (i + 1) * size] for i in range(parts)] if text else [""]


class FakeHttpServer(ThreadingHTTPServer):
    daemon_threads = True  # keep-alive handler threads never block shutdown
    allow_reuse_address = True
    fake: FakeDashScope

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


class CompletionHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeHttpServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the record instead
        return

    # ---------------------------------------------------------------------------- plumbing

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw.decode("utf-8")) if raw else {}

    def _send_json(self, status: int, body: Any, *, close: bool = False) -> None:
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

    def _chunk(self, text: str) -> None:
        data = text.encode("utf-8")
        self.wfile.write(f"{len(data):x}\r\n".encode("ascii") + data + b"\r\n")
        self.wfile.flush()

    def _abort(self) -> None:
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
        fake = self.server.fake
        if parts.path == "/_fake/health":
            self._send_json(200, {"ok": True, "apps": list(APP_NAMES)})
        elif parts.path == "/_fake/summary":
            self._send_json(200, fake.summary())
        elif parts.path == "/_fake/requests":
            app = parse_qs(parts.query).get("app", [None])[0]
            self._send_json(200, {"requests": fake.requests(app)})
        else:
            self._send_json(404, {"code": "NotFound", "message": f"no route {parts.path}", "request_id": ""})

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        fake = self.server.fake
        try:
            body = self._read_json()
        except (ValueError, UnicodeDecodeError):
            self._send_json(400, {"code": "InvalidParameter", "message": "body is not JSON", "request_id": ""})
            return
        if path == "/_fake/reset":
            fake.reset()
            self._send_json(200, {"ok": True})
            return
        if path == "/_fake/script":
            try:
                fake.script(
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
                self._send_json(400, {"ok": False, "error": str(exc)})
                return
            self._send_json(200, {"ok": True})
            return
        match = _COMPLETION.fullmatch(path)
        if not match:
            self._send_json(404, {"code": "NotFound", "message": f"no route {path}", "request_id": ""})
            return
        self._completion(fake, match.group(1), body)

    # -------------------------------------------------------------------------- completion

    def _completion(self, fake: FakeDashScope, app_id: str, body: dict) -> None:
        app = app_for_app_id(app_id, fake.app_ids)
        payload_input = body.get("input") or {}
        parameters = body.get("parameters") or {}
        prompt = str(payload_input.get("prompt") or "")
        stream = self.headers.get("X-DashScope-SSE", "").lower() == "enable" or "text/event-stream" in self.headers.get(
            "Accept", ""
        )
        incremental = bool(parameters.get("incremental_output"))
        auth = self.headers.get("Authorization", "")
        step, script = fake.next_step(app or app_id)
        request_id = str(uuid.uuid4())
        entry = {
            "at": time.time(),
            "app_id": app_id,
            "app": app,
            "stream": stream,
            "incremental_output": incremental,
            "prompt": prompt,
            "session_id": payload_input.get("session_id"),
            "biz_params": payload_input.get("biz_params"),
            "workspace": self.headers.get("X-DashScope-WorkSpace"),
            "has_bearer": auth.startswith("Bearer ") and len(auth) > len("Bearer "),
            "step": step.kind if step.kind != "error" else f"{step.status}:{step.code}",
            "request_id": request_id,
        }
        fake.record(entry)

        latency = step.delay_ms if step.delay_ms is not None else script.latency_ms
        if latency:
            time.sleep(latency / 1000)

        if fake.api_key is not None and auth != f"Bearer {fake.api_key}":
            step = Step("error", 401, "InvalidApiKey", "Invalid API-key provided.")
        if step.kind in ("drop", "hang"):  # hang: its delay was the silence
            self._abort()
            return
        if step.kind == "error" or (step.kind == "stream_error" and not stream):
            self._send_json(
                step.status, {"code": step.code, "message": step.message or step.code, "request_id": request_id}
            )
            return

        text = fake.answer_text(app, prompt, script, step)
        session_id = payload_input.get("session_id") or uuid.uuid4().hex
        tokens_in, tokens_out = script.tokens or (len(prompt) // 2 + 20, max(1, len(text) // 2))

        if not stream:
            body_out = {
                "output": {"finish_reason": "stop", "session_id": session_id, "text": text},
                "usage": _usage(script.usage_shape, tokens_in, tokens_out, script.model),
                "request_id": request_id,
            }
            if step.kind == "cut":
                data = json.dumps(body_out, ensure_ascii=False).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self._abort()
                return
            self._send_json(200, body_out)
            fake.bill(entry, tokens_in, tokens_out)
            return
        self._stream(fake, entry, script, step, text, session_id, tokens_in, tokens_out, incremental)

    def _stream(
        self,
        fake: FakeDashScope,
        entry: dict,
        script: AppScript,
        step: Step,
        text: str,
        session_id: str,
        tokens_in: int,
        tokens_out: int,
        incremental: bool,
    ) -> None:
        request_id = entry["request_id"]
        pieces = _split(text, script.chunks)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream;charset=UTF-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        sent = ""
        stop_at = step.after_chunks if step.kind in ("cut", "stream_error") else len(pieces)
        for index, piece in enumerate(pieces[:stop_at], start=1):
            if index > 1 and fake.chunk_delay_ms:
                time.sleep(fake.chunk_delay_ms / 1000)
            sent += piece
            last = index == len(pieces)
            out_tokens = tokens_out if last else max(1, tokens_out * len(sent) // max(len(text), 1))
            data = {
                "output": {
                    "session_id": session_id,
                    "finish_reason": "stop" if last else "null",
                    "text": piece if incremental else sent,
                },
                "usage": _usage(script.usage_shape, tokens_in, out_tokens, script.model),
                "request_id": request_id,
            }
            self._chunk(f"id:{index}\nevent:result\n:HTTP_STATUS/200\ndata:{json.dumps(data, ensure_ascii=False)}\n\n")
            fake.bill(entry, tokens_in, out_tokens)
        if step.kind == "cut":
            self._abort()
            return
        if step.kind == "stream_error":
            error = {"code": step.code, "message": step.message or step.code, "request_id": request_id}
            self._chunk(
                f"id:{stop_at + 1}\nevent:error\n:HTTP_STATUS/{step.status}\n"
                f"data:{json.dumps(error, ensure_ascii=False)}\n\n"
            )
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
