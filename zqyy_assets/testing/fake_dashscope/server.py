"""``FakeDashScope``: the server object tests hold, its scripting and what it recorded."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from typing import Any

from zqyy_assets.core.apps import APPS
from zqyy_assets.core.llm import offline
from zqyy_assets.testing.fake_dashscope.http_handler import CompletionHandler, FakeHttpServer
from zqyy_assets.testing.fake_dashscope.scripts import DEFAULT_MODEL, AppScript, Step, check_mix, draw, parse_step


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
        seed: int | None = None,
    ) -> None:
        self.latency_ms = latency_ms
        self.chunk_delay_ms = chunk_delay_ms
        self.chunks = chunks
        self.api_key = api_key  # when set, any other key gets 401 InvalidApiKey
        self.app_ids = dict(app_ids or {})
        self._lock = threading.Lock()
        self._scripts: dict[str, AppScript] = {}
        self._records: list[dict] = []
        self._random = random.Random(seed)  # draws the fault mix: one seed, one sequence of faults
        self._httpd = FakeHttpServer((host, port), CompletionHandler)
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
        """End the serving thread started by ``start``, then close."""
        self._httpd.shutdown()
        self.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        """Release the port and end kept-alive connections (after ``serve_forever`` returned)."""
        self._httpd.server_close()
        self._httpd.close_open_connections()

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
        mix: dict[str, float] | None = None,
        seed: int | None = None,
    ) -> None:
        """Queue steps for an app (name, app id, or ``"*"``) and set how it answers; ``mix`` sets
        its fault mix (``{}`` clears it), ``seed`` restarts the draws."""
        if usage_shape is not None and usage_shape not in ("models", "flat", "total"):
            raise ValueError(f"usage_shape must be models, flat or total, not {usage_shape!r}")
        parsed = [parse_step(s) for s in steps]
        checked = check_mix(mix) if mix is not None else None
        with self._lock:
            if seed is not None:
                self._random.seed(seed)
            if checked is not None:
                self._scripts.setdefault(app, AppScript()).mix = checked or None
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

    def summary(self) -> dict:
        """What was received and billed, without the prompts: requests, the tokens of every
        usage sent whole (what the service would bill), and the requests per step."""
        with self._lock:
            return {
                "requests": len(self._records),
                "tokens_in": sum(r["tokens_in"] for r in self._records),
                "tokens_out": sum(r["tokens_out"] for r in self._records),
                "steps": dict(Counter(r["step"] for r in self._records)),
                "apps": dict(Counter(str(r["app"]) for r in self._records)),
            }

    # ------------------------------------------------------------------------------- serving

    def next_step(self, key: str) -> tuple[Step, AppScript]:
        """The step for this request and the effective settings (the app's over ``"*"``)."""
        with self._lock:
            own = self._scripts.get(key) or AppScript()
            default = self._scripts.get("*") or AppScript()
            source = own if own.steps else default
            if source.steps:
                step = source.steps.popleft()
            else:
                mix = own.mix if own.mix is not None else default.mix
                step = draw(mix, self._random.random()) if mix else Step()

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

    def record(self, entry: dict) -> None:
        with self._lock:
            entry["seq"] = len(self._records) + 1
            entry.setdefault("tokens_in", 0)
            entry.setdefault("tokens_out", 0)
            self._records.append(entry)

    def bill(self, entry: dict, tokens_in: int, tokens_out: int) -> None:
        """A request's usage as last sent whole (a stream's usage is cumulative: the last wins)."""
        with self._lock:
            entry["tokens_in"], entry["tokens_out"] = tokens_in, tokens_out

    def answer_text(self, app: str | None, prompt: str, script: AppScript, step: Step) -> str:
        if script.answer is not None:
            answer = script.answer
        elif app == "app1_chat":
            return offline.chat_answer(prompt)  # the offline reply without its offline label and key hint
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
