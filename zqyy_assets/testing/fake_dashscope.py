"""A fake DashScope Application API: a real HTTP server on loopback that the unmodified
``dashscope`` SDK talks to. Tests, benchmarks and the demo (``--fake-llm``) use it.

It answers ``POST /api/v1/apps/{app_id}/completion`` as the service frames it:

- plain JSON: ``{"output": {"finish_reason": "stop", "session_id", "text"}, "usage": {...},
  "request_id"}``;
- SSE (``X-DashScope-SSE: enable``): one event per chunk, ``id:n`` / ``event:result`` /
  ``:HTTP_STATUS/200`` / ``data:{json}`` with no space after the colons, ``finish_reason``
  ``"null"`` until the last chunk's ``"stop"``, cumulative usage, text as deltas when
  ``incremental_output`` is true (else cumulative); the stream ends by closing;
- errors as ``{"code", "message", "request_id"}`` with the HTTP status, or inside a stream as
  ``event:error`` / ``:HTTP_STATUS/<status>``.

Answers are computed by the offline analyst from the prompt, so they are valid for each app's
schema. The app behind an ``app_id`` is the app name it contains (demo ids are
``fake-<name>``) or one mapped with ``app_ids=``.

Scripting, per app (by name, or ``"*"`` for every app): a queue of steps consumed one per
request (then ``ok``), latency, token counts, usage shape (``models`` | ``flat`` | ``total``),
stream chunk count, a fixed answer. Steps are shorthands (``"ok"``, ``"429"``, ``"500"``,
``"503"``, ``"401"``, ``"400"``, ``"403"``, ``"data_inspection"``, ``"arrearage"``,
``"invalid_json"``, ``"bare_list"``, ``"drop"``, ``"cut:3"`` a stream cut after 3 chunks,
``"stream_error:2:Throttling.RateQuota"``, ``"slow:1500"``) or dicts
(``{"kind": "error", "status": 500, "code": "InternalError"}``).

In-process::

    with FakeDashScope() as fake:
        fake.script("app2_finance", ["429", "ok"], tokens=(1200, 300))
        ... LLMService(load_settings(base_url=fake.base_url, api_key="fake-key", ...)) ...
        assert fake.count("app2_finance") == 2

Another process::

    python -m zqyy_assets.testing.fake_dashscope --port 8765 --latency-ms 200 [--print-env]

and script it over HTTP (``FakeAdmin`` wraps these): ``POST /_fake/script`` with
``{"app", "steps", "latency_ms", "tokens": [in, out], "usage_shape", "chunks", "answer"}``,
``GET /_fake/requests[?app=...]``, ``POST /_fake/reset``, ``GET /_fake/health``.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from zqyy_assets.core.apps import APP_NAMES, APPS, app_for_app_id
from zqyy_assets.core.llm import offline

DEFAULT_MODEL = "qwen-plus"
FAKE_API_KEY = "fake-key"
_COMPLETION = re.compile(r"/api/v1/apps/([^/]+)/completion")


@dataclass(frozen=True)
class Step:
    kind: str = "ok"  # ok | error | invalid_json | bare_list | drop | cut | stream_error
    status: int = 200
    code: str | None = None
    message: str | None = None
    after_chunks: int = 0  # for cut / stream_error
    delay_ms: float | None = None  # this response's latency, instead of the app's


_ERRORS = {
    "429": (429, "Throttling.RateQuota", "Requests rate limit exceeded, please try your request again later."),
    "500": (500, "InternalError", "An internal error has occured, please try again later or contact service support."),
    "503": (503, "ServiceUnavailable", "Service temporarily unavailable, possibly overloaded or not ready."),
    "401": (401, "InvalidApiKey", "Invalid API-key provided."),
    "400": (400, "InvalidParameter", "Input parameter is invalid."),
    "403": (403, "AccessDenied", "Access denied."),
    "data_inspection": (400, "DataInspectionFailed", "Input data may contain inappropriate content."),
    "arrearage": (400, "Arrearage", "Access denied, please make sure your account is in good standing."),
}
_STATUS_FOR_CODE = {code: status for status, code, _ in _ERRORS.values()}


def parse_step(spec: str | dict | Step) -> Step:
    if isinstance(spec, Step):
        return spec
    if isinstance(spec, dict):
        return Step(**spec)
    text = str(spec).strip()
    if text in ("ok", "200"):
        return Step()
    if text == "throttle":
        text = "429"
    if text in _ERRORS:
        status, code, message = _ERRORS[text]
        return Step("error", status, code, message)
    if text in ("invalid_json", "bare_list", "drop"):
        return Step(text)
    head, _, rest = text.partition(":")
    if head == "cut":
        return Step("cut", after_chunks=int(rest or 1))
    if head == "stream_error":
        count, _, code = rest.partition(":")
        code = code or "Throttling.RateQuota"
        return Step(
            "stream_error",
            status=_STATUS_FOR_CODE.get(code, 500),
            code=code,
            message=f"{code} (scripted)",
            after_chunks=int(count or 0),
        )
    if head == "slow":
        return Step(delay_ms=float(rest))
    if head == "error":  # error:<status>:<code>
        status, _, code = rest.partition(":")
        return Step("error", int(status), code or "InternalError", f"{code or 'error'} (scripted)")
    raise ValueError(f"unknown fake step {spec!r}")


@dataclass
class AppScript:
    """How one app (or ``"*"``, every app) answers; ``None`` inherits from ``"*"``, then the server."""

    steps: deque = field(default_factory=deque)
    latency_ms: float | None = None
    tokens: tuple[int, int] | None = None
    usage_shape: str | None = None
    chunks: int | None = None
    answer: Any = None
    model: str | None = None


class FakeDashScope:
    """The fake server, in a daemon thread. Thread-safe; use as a context manager."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_ms: float = 0.0,
        chunk_delay_ms: float = 0.0,
        chunks: int = 4,
        api_key: str | None = None,
        app_ids: dict[str, str] | None = None,
    ) -> None:
        self.latency_ms = latency_ms
        self.chunk_delay_ms = chunk_delay_ms
        self.chunks = chunks
        self.api_key = api_key  # when set, any other key gets 401 InvalidApiKey
        self.app_ids = dict(app_ids or {})
        self._lock = threading.Lock()
        self._scripts: dict[str, AppScript] = {}
        self._records: list[dict] = []
        self._httpd = _Server((host, port), _Handler)
        self._httpd.fake = self
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------ lifecycle

    @property
    def host(self) -> str:
        return self._httpd.server_address[0]

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to give the SDK (``base_address`` / ``DASHSCOPE_BASE_URL``)."""
        return f"{self.url}/api/v1"

    def start(self) -> FakeDashScope:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-dashscope-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_open_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.2)

    def __enter__(self) -> FakeDashScope:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------ scripting

    def script(
        self,
        app: str,
        steps: list | tuple = (),
        *,
        latency_ms: float | None = None,
        tokens: tuple[int, int] | list[int] | None = None,
        usage_shape: str | None = None,
        chunks: int | None = None,
        answer: Any = None,
        model: str | None = None,
    ) -> None:
        """Queue steps for an app (name, app id, or ``"*"``) and set how it answers."""
        if usage_shape is not None and usage_shape not in ("models", "flat", "total"):
            raise ValueError(f"usage_shape must be models, flat or total, not {usage_shape!r}")
        parsed = [parse_step(s) for s in steps]
        with self._lock:
            current = self._scripts.setdefault(app, AppScript())
            current.steps.extend(parsed)
            if latency_ms is not None:
                current.latency_ms = latency_ms
            if tokens is not None:
                current.tokens = (int(tokens[0]), int(tokens[1]))
            if usage_shape is not None:
                current.usage_shape = usage_shape
            if chunks is not None:
                current.chunks = chunks
            if answer is not None:
                current.answer = answer
            if model is not None:
                current.model = model

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._records.clear()

    def requests(self, app: str | None = None) -> list[dict]:
        """What the server received (completion requests only), oldest first."""
        with self._lock:
            return [dict(r) for r in self._records if app is None or app in (r["app"], r["app_id"])]

    def count(self, app: str | None = None) -> int:
        return len(self.requests(app))

    # ------------------------------------------------------------------------------- serving

    def _next(self, key: str) -> tuple[Step, AppScript]:
        """The step for this request and the effective settings (the app's over ``"*"``)."""
        with self._lock:
            own = self._scripts.get(key) or AppScript()
            default = self._scripts.get("*") or AppScript()
            source = own if own.steps else default
            step = source.steps.popleft() if source.steps else Step()

            def pick(name: str, fallback: Any) -> Any:
                for candidate in (getattr(own, name), getattr(default, name)):
                    if candidate is not None:
                        return candidate
                return fallback

            effective = AppScript(
                latency_ms=pick("latency_ms", self.latency_ms),
                tokens=pick("tokens", None),
                usage_shape=pick("usage_shape", "models"),
                chunks=pick("chunks", self.chunks),
                answer=pick("answer", None),
                model=pick("model", DEFAULT_MODEL),
            )
            return step, effective

    def _record(self, entry: dict) -> None:
        with self._lock:
            entry["seq"] = len(self._records) + 1
            self._records.append(entry)

    def _answer_text(self, app: str | None, prompt: str, script: AppScript, step: Step) -> str:
        if script.answer is not None:
            answer = script.answer
        elif app == "app1_chat":
            return offline.chat_reply(prompt).replace("（离线分析助手，未连接大模型）", "")
        elif app in APPS:
            answer = {k: v for k, v in offline.analyse(app, prompt).items() if k != "_provider"}
        else:
            answer = {"text": "ok"}
        if step.kind == "bare_list" and isinstance(answer, dict):
            answer = next((v for v in answer.values() if isinstance(v, list)), [answer])
        if step.kind == "invalid_json":
            full = json.dumps(answer, ensure_ascii=False)
            return full[: max(10, len(full) // 3)]  # what a model gives when it stops mid-answer
        return answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)


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


class _Server(ThreadingHTTPServer):
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
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away (timed out, or the test is over): nothing to report
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

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
        step, script = fake._next(app or app_id)
        request_id = str(uuid.uuid4())
        fake._record(
            {
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
        )

        latency = step.delay_ms if step.delay_ms is not None else script.latency_ms
        if latency:
            time.sleep(latency / 1000)

        if fake.api_key is not None and auth != f"Bearer {fake.api_key}":
            step = Step("error", 401, "InvalidApiKey", "Invalid API-key provided.")
        if step.kind == "drop":
            self._abort()
            return
        if step.kind == "error" or (step.kind == "stream_error" and not stream):
            self._send_json(
                step.status, {"code": step.code, "message": step.message or step.code, "request_id": request_id}
            )
            return

        text = fake._answer_text(app, prompt, script, step)
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
            return
        self._stream(fake, script, step, text, session_id, request_id, tokens_in, tokens_out, incremental)

    def _stream(
        self,
        fake: FakeDashScope,
        script: AppScript,
        step: Step,
        text: str,
        session_id: str,
        request_id: str,
        tokens_in: int,
        tokens_out: int,
        incremental: bool,
    ) -> None:
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


class FakeAdmin:
    """Scripts a fake server running in another process, over its ``/_fake/*`` endpoints."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/").removesuffix("/api/v1")

    def _post(self, path: str, body: dict) -> dict:
        import requests

        response = requests.post(f"{self.url}{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def script(self, app: str, steps: list | tuple = (), **settings: Any) -> None:
        self._post("/_fake/script", {"app": app, "steps": list(steps), **settings})

    def reset(self) -> None:
        self._post("/_fake/reset", {})

    def requests(self, app: str | None = None) -> list[dict]:
        import requests

        params = {"app": app} if app else None
        response = requests.get(f"{self.url}/_fake/requests", params=params, timeout=10)
        response.raise_for_status()
        return response.json()["requests"]

    def count(self, app: str | None = None) -> int:
        return len(self.requests(app))


def demo_env(base_url: str) -> dict[str, str]:
    """Environment for pointing the project at a fake server (``--print-env`` prints it)."""
    env = {
        "ZQYY_LLM_PROVIDER": "dashscope",
        "DASHSCOPE_API_KEY": FAKE_API_KEY,
        "DASHSCOPE_BASE_URL": base_url,
    }
    for spec in APPS.values():
        env[spec.app_id_env] = f"fake-{spec.name}"
    return env


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m zqyy_assets.testing.fake_dashscope",
        description="Run the fake DashScope Application API until interrupted.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before each answer")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between stream chunks")
    parser.add_argument("--chunks", type=int, default=4, help="chunks per streamed answer")
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any bearer key)")
    parser.add_argument("--print-env", action="store_true", help="print shell exports pointing the project here")
    args = parser.parse_args(argv)

    fake = FakeDashScope(
        args.host,
        args.port,
        latency_ms=args.latency_ms,
        chunk_delay_ms=args.chunk_delay_ms,
        chunks=args.chunks,
        api_key=args.api_key,
    )
    if args.print_env:
        env = demo_env(fake.base_url)
        if args.api_key:
            env["DASHSCOPE_API_KEY"] = args.api_key
        for key, value in env.items():
            print(f"export {key}='{value}'")
        sys.stdout.flush()
    print(f"fake DashScope listening on {fake.base_url}", file=sys.stderr, flush=True)

    def _stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        fake.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        fake._httpd.server_close()
        fake._httpd.close_open_connections()


if __name__ == "__main__":
    main()
