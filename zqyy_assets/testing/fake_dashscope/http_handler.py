"""The fake's HTTP side: DashScope's completion route (plain JSON and SSE) and its errors; the
plumbing and ``/_fake/*`` are ``fake_common.http_base``'s."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from zqyy_assets.core.apps import app_for_app_id
from zqyy_assets.testing.fake_common.http_base import FakeHandler, split_text
from zqyy_assets.testing.fake_common.scripts import AppScript, Step
from zqyy_assets.testing.fake_dashscope.quota import THROTTLED

if TYPE_CHECKING:
    from zqyy_assets.testing.fake_dashscope.server import FakeDashScope

_COMPLETION = re.compile(r"/api/v1/apps/([^/]+)/completion")


def _usage(shape: str, tokens_in: int, tokens_out: int, model: str) -> dict:
    if shape == "flat":
        return {"input_tokens": tokens_in, "output_tokens": tokens_out}
    if shape == "total":
        return {"total_tokens": tokens_in + tokens_out}
    return {"models": [{"model_id": model, "input_tokens": tokens_in, "output_tokens": tokens_out}]}


class CompletionHandler(FakeHandler):
    def error_body(self, status: int, code: str | None, message: str | None) -> dict:
        return {"code": code, "message": message or code, "request_id": ""}

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        if urlsplit(self.path).path == "/_fake/quota":
            quota = cast("FakeDashScope", self.fake).quota
            self.send_json(200, quota.stats() if quota else {})
        else:
            super().do_GET()

    def completion(self, path: str, body: dict) -> bool:
        match = _COMPLETION.fullmatch(path)
        if not match:
            return False
        self._completion(self.fake, match.group(1), body)  # type: ignore[arg-type]
        return True

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
        # The provider's limit (quota.py): over it, 429 Throttling.RateQuota at once.
        if fake.quota is not None and not fake.quota.admit():
            step, latency = THROTTLED, 0
        if latency:
            time.sleep(latency / 1000)
        if fake.quota is not None and step is not THROTTLED:
            fake.quota.done()

        if fake.api_key is not None and auth != f"Bearer {fake.api_key}":
            step = Step("error", 401, "InvalidApiKey", "Invalid API-key provided.")
        if step.kind in ("drop", "timeout", "hang"):  # hang: its delay was the silence
            if step.kind == "timeout":
                fake.hang()  # until the client's time-out closes it, or the fake stops
            self.abort()
            return
        if step.kind == "error" or (step.kind == "stream_error" and not stream):
            self.send_json(
                step.status, {"code": step.code, "message": step.message or step.code, "request_id": request_id}
            )
            return

        session_id = payload_input.get("session_id") or uuid.uuid4().hex
        # A follow-up in a session (a re-ask) is answered from the session's first prompt.
        text = fake.answer_text(app, fake.conversation_prompt(session_id, prompt), script, step)
        tokens_in, tokens_out = script.tokens or (len(prompt) // 2 + 20, max(1, len(text) // 2))

        if not stream:
            body_out = {
                "output": {"finish_reason": "stop", "session_id": session_id if step.session else "", "text": text},
                "usage": _usage(script.usage_shape, tokens_in, tokens_out, script.model),
                "request_id": request_id,
            }
            if step.kind == "cut":
                self.send_half_json(body_out)
                return
            self.send_json(200, body_out)
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
        pieces = split_text(text, script.chunks)
        self.start_stream()
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
            self.chunk(f"id:{index}\nevent:result\n:HTTP_STATUS/200\ndata:{json.dumps(data, ensure_ascii=False)}\n\n")
            fake.bill(entry, tokens_in, out_tokens)
        if step.kind == "cut":
            self.abort()
            return
        if step.kind == "stream_error":
            error = {"code": step.code, "message": step.message or step.code, "request_id": request_id}
            self.chunk(
                f"id:{stop_at + 1}\nevent:error\n:HTTP_STATUS/{step.status}\n"
                f"data:{json.dumps(error, ensure_ascii=False)}\n\n"
            )
        self.end_stream()
