"""The fake's HTTP side: ``POST /v1/chat/completions`` (plain JSON and SSE) and OpenAI-style errors;
the plumbing and ``/_fake/*`` are ``fake_common.http_base``'s."""

from __future__ import annotations

import json
import time
import uuid
from functools import cache
from typing import TYPE_CHECKING, Any

from zqyy_assets.core.apps import APP_NAMES, system_prompt
from zqyy_assets.core.llm.correction import REASK_MARK
from zqyy_assets.testing.fake_common.http_base import FakeHandler, split_text
from zqyy_assets.testing.fake_common.scripts import AppScript, Step

if TYPE_CHECKING:
    from zqyy_assets.testing.fake_openai.server import FakeOpenAI

ROUTE = "/v1/chat/completions"

# A scripted step's DashScope code as an OpenAI-compatible server words it: (type, code).
_OPENAI_ERRORS = {
    "Throttling.RateQuota": ("requests", "rate_limit_exceeded"),
    "InternalError": ("server_error", "internal_error"),
    "ServiceUnavailable": ("server_error", "service_unavailable"),
    "InvalidApiKey": ("invalid_request_error", "invalid_api_key"),
    "InvalidParameter": ("invalid_request_error", "invalid_parameter"),
    "AccessDenied": ("invalid_request_error", "access_denied"),
    "DataInspectionFailed": ("data_inspection_failed", "data_inspection_failed"),
    "Arrearage": ("invalid_request_error", "arrearage"),
}


def openai_error(status: int, code: str | None, message: str | None) -> dict:
    kind, wire_code = _OPENAI_ERRORS.get(
        code or "", ("invalid_request_error" if status < 500 else "server_error", code)
    )
    return {
        "error": {"message": message or wire_code or f"HTTP {status}", "type": kind, "param": None, "code": wire_code}
    }


@cache
def _apps_by_system_prompt() -> dict[str, str]:
    return {system_prompt(name).strip(): name for name in APP_NAMES}


def app_for_system_prompt(text: str | None) -> str | None:
    """The app whose repo system prompt this is (as the OpenAI provider sends it), else None."""
    return _apps_by_system_prompt().get((text or "").strip())


def _usage(tokens_in: int, tokens_out: int) -> dict:
    return {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}


def _message(messages: list, role: str) -> str | None:
    """The last message of ``role`` as text (a list of parts joined)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == role:
            content = message.get("content")
            if isinstance(content, list):
                return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return None if content is None else str(content)
    return None


class ChatCompletionsHandler(FakeHandler):
    def error_body(self, status: int, code: str | None, message: str | None) -> dict:
        return openai_error(status, code, message)

    def completion(self, path: str, body: dict) -> bool:
        if path.rstrip("/") != ROUTE:
            return False
        self._completion(self.fake, body)  # type: ignore[arg-type]
        return True

    def _completion(self, fake: FakeOpenAI, body: dict) -> None:
        messages = body.get("messages") or []
        system, prompt = _message(messages, "system"), _message(messages, "user") or ""
        if REASK_MARK in prompt:  # a re-ask (core/llm/correction.py) is answered from the prompt it corrects
            prompt = _message(messages[::-1], "user") or ""
        app, model = app_for_system_prompt(system), str(body.get("model") or "")
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        response_format = body.get("response_format") or {}
        auth = self.headers.get("Authorization", "")
        step, script = fake.next_step(app, model, model=model or "unknown")
        request_id = f"chatcmpl-{uuid.uuid4().hex}"
        fake.record(
            {
                "at": time.time(),
                "app": app,
                "model": model,
                "stream": stream,
                "include_usage": include_usage,
                "response_format": response_format.get("type"),
                "json_schema": response_format.get("json_schema"),
                "messages": messages,
                "system": system,
                "prompt": prompt,
                "has_bearer": auth.startswith("Bearer ") and len(auth) > len("Bearer "),
                "step": step.kind if step.kind != "error" else f"{step.status}:{step.code}",
                "request_id": request_id,
            }
        )

        latency = step.delay_ms if step.delay_ms is not None else script.latency_ms
        if latency:
            time.sleep(latency / 1000)

        if fake.api_key is not None and auth != f"Bearer {fake.api_key}":
            step = Step("error", 401, "InvalidApiKey", "Incorrect API key provided.")
        elif response_format.get("type") == "json_schema" and not fake.json_schema:
            step = Step("error", 400, "InvalidParameter", "response_format json_schema is not supported")
        if step.kind in ("drop", "timeout"):
            if step.kind == "timeout":
                fake.hang()  # until the client's time-out closes it, or the fake stops
            self.abort()
            return
        if step.kind == "error" or (step.kind == "stream_error" and not stream):
            self.send_json(step.status, openai_error(step.status, step.code, step.message))
            return

        text = fake.answer_text(app, prompt, script, step)
        tokens_in, tokens_out = script.tokens or (len(prompt) // 2 + 20, max(1, len(text) // 2))
        head = {"id": request_id, "created": int(time.time()), "model": script.model}
        if not stream:
            body_out = {
                **head,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": _usage(tokens_in, tokens_out),
            }
            if step.kind == "cut":
                self.send_half_json(body_out)
                return
            self.send_json(200, body_out)
            return
        self._stream(fake, script, step, text, head, (tokens_in, tokens_out) if include_usage else None)

    def _stream(
        self, fake: FakeOpenAI, script: AppScript, step: Step, text: str, head: dict, usage: tuple[int, int] | None
    ) -> None:
        pieces = split_text(text, script.chunks)
        self.start_stream()

        def event(choices: list, **extra: Any) -> None:
            data = {**head, "object": "chat.completion.chunk", "choices": choices, **extra}
            if usage is not None:
                data.setdefault("usage", None)
            self.chunk(f"data: {json.dumps(data, ensure_ascii=False)}\n\n")

        stop_at = step.after_chunks if step.kind in ("cut", "stream_error") else len(pieces)
        for index, piece in enumerate(pieces[:stop_at], start=1):
            if index > 1 and fake.chunk_delay_ms:
                time.sleep(fake.chunk_delay_ms / 1000)
            delta = {"role": "assistant", "content": piece} if index == 1 else {"content": piece}
            event([{"index": 0, "delta": delta, "finish_reason": None, "logprobs": None}])
        if step.kind == "cut":
            self.abort()
            return
        if step.kind == "stream_error":
            error = openai_error(step.status, step.code, step.message or step.code)
            self.chunk(f"data: {json.dumps(error, ensure_ascii=False)}\n\n")
            self.end_stream()
            return
        event([{"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}])
        if usage is not None:
            event([], usage=_usage(*usage))
        self.chunk("data: [DONE]\n\n")
        self.end_stream()
