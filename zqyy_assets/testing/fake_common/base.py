"""``ScriptedFake``: a fake LLM server in a daemon thread, its scripting and what it recorded.

Subclasses give the request handler (their wire format) and how an answer's text is made.
Scripts are keyed by app name, by any other key the handler looks a request up by (an app id,
a model name), or ``"*"`` for every request; a request takes the first key's queued step, and
each setting from the first key that sets it, then ``"*"``, then the server's defaults.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from typing import Any, Self

from zqyy_assets.core.apps import APPS, CHAT_APP
from zqyy_assets.core.llm import offline
from zqyy_assets.testing.fake_common.http_base import FakeHandler, FakeHttpServer
from zqyy_assets.testing.fake_common.scripts import DEFAULT_MODEL, AppScript, Step, check_mix, draw, parse_step

USAGE_SHAPES = ("models", "flat", "total")


class ScriptedFake:
    """Thread-safe; use as a context manager (``start`` / ``stop``) or ``serve_forever`` in a process."""

    handler: type[FakeHandler]
    name = "fake-llm"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_ms: float = 0.0,
        chunk_delay_ms: float = 0.0,
        chunks: int = 4,
        api_key: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.latency_ms = latency_ms
        self.chunk_delay_ms = chunk_delay_ms
        self.chunks = chunks
        self.api_key = api_key  # when set, any other key is refused as the service would (401)
        self._lock = threading.Lock()
        self._scripts: dict[str, AppScript] = {}
        self._records: list[dict] = []
        self._random = random.Random(seed)  # draws the fault mix: one seed, one sequence of faults
        self._httpd = FakeHttpServer((host, port), self.handler)
        self._httpd.fake = self
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # ------------------------------------------------------------------------------ lifecycle

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the serving thread started by ``start``, then close."""
        self._stopping.set()
        self._httpd.shutdown()
        self.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def serve_forever(self) -> None:
        self._httpd.serve_forever(poll_interval=0.2)

    def close(self) -> None:
        """Release the port and end kept-alive connections (after ``serve_forever`` returned)."""
        self._stopping.set()
        self._httpd.server_close()
        self._httpd.close_open_connections()

    def __enter__(self) -> Self:
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
        """Queue steps for a key (app name, app id, model, or ``"*"``) and set how it answers;
        ``mix`` sets its fault mix (``{}`` clears it), ``seed`` restarts the draws."""
        if usage_shape is not None and usage_shape not in USAGE_SHAPES:
            raise ValueError(f"usage_shape must be one of {', '.join(USAGE_SHAPES)}, not {usage_shape!r}")
        parsed = [parse_step(s) for s in steps]
        checked = check_mix(mix) if mix is not None else None
        with self._lock:
            if seed is not None:
                self._random.seed(seed)
            current = self._scripts.setdefault(app, AppScript())
            if checked is not None:
                current.mix = checked or None
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

    # What a recorded request may be looked up by in ``requests(key)``.
    record_keys: tuple[str, ...] = ("app", "app_id", "model")

    def requests(self, app: str | None = None) -> list[dict]:
        """What the server received (completion requests only), oldest first; ``app`` filters by any key."""
        with self._lock:
            return [dict(r) for r in self._records if app is None or any(r.get(k) == app for k in self.record_keys)]

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

    def next_step(self, *keys: str | None, model: str = DEFAULT_MODEL) -> tuple[Step, AppScript]:
        """The step for this request and the effective settings (the first key's, then ``"*"``'s);
        ``model`` is the answering model unless one is scripted."""
        with self._lock:
            scripts = [self._scripts[k] for k in dict.fromkeys(keys) if k and k in self._scripts]
            scripts.append(self._scripts.get("*") or AppScript())
            source = next((s for s in scripts if s.steps), None)
            if source is not None:
                step = source.steps.popleft()
            else:
                mix = next((s.mix for s in scripts if s.mix is not None), None)
                step = draw(mix, self._random.random()) if mix else Step()

            def pick(name: str, fallback: Any) -> Any:
                return next((v for s in scripts if (v := getattr(s, name)) is not None), fallback)

            effective = AppScript(
                latency_ms=pick("latency_ms", self.latency_ms),
                tokens=pick("tokens", None),
                usage_shape=pick("usage_shape", "models"),
                chunks=pick("chunks", self.chunks),
                answer=pick("answer", None),
                model=pick("model", model),
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

    def hang(self, limit_s: float = 120.0) -> None:
        """A ``timeout`` step: answer nothing until the client gives up or the fake stops."""
        self._stopping.wait(limit_s)

    def answer_text(self, app: str | None, prompt: str, script: AppScript, step: Step) -> str:
        """The answer's text: the step's own answer, the scripted answer, else the offline
        analyst's (schema-valid) for the app; shaped by the step (``bare_list``, ``invalid_json``)."""
        if step.answer is not None:
            answer = step.answer
        elif script.answer is not None:
            answer = script.answer
        elif app == CHAT_APP:
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
