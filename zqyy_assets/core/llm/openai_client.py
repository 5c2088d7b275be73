"""One attempt at an OpenAI-compatible chat completion through the official ``openai`` SDK, nothing more.

Like ``client.py`` for DashScope: retries (``retry.py``), guards and the ledger live elsewhere;
this module sends one request and turns the SDK's answer (or exception) into a ``CallResult`` /
``StreamChunk`` or a classified ``AttemptError``.

- Messages: the app's versioned system prompt (``zqyy_assets/prompts``) is the system message,
  the prompt (the prompt JSON; the chat's text) the user message.
- Structured output (apps with a JSON answer): ``response_format`` is the app's pydantic model as
  a JSON schema (``core/answer_schemas.py``, not strict: the models keep extra keys), or
  ``json_object`` for servers without schemas (``ZQYY_LLM_RESPONSE_FORMAT``). The answer is
  still parsed and validated as every provider's is.
- Streams ask for usage (``stream_options.include_usage``): the last event carries it, with no
  choices.
- The SDK's own retries are off (``max_retries=0``): our retry loop decides, one request per
  attempt. Each request's time-out is what is left of the answer's deadline.
- Errors (openai 2.54, read from ``openai/_exceptions.py`` and ``_streaming.py``):
  ``APIStatusError`` has the status and the body's ``code`` (``errors.classify_openai``);
  ``APITimeoutError`` is a time-out, ``APIConnectionError`` a dropped connection; an error
  event inside a stream is a bare ``APIError`` (its code decides); a stream cut mid-body
  surfaces as httpx's own ``TransportError``.

The SDK is imported on first use (as ``dashscope`` is): a code location that never asks an
OpenAI-compatible model never pays for the import.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from functools import cache
from typing import Any

import httpx

from zqyy_assets.core.answer_schemas import SCHEMAS
from zqyy_assets.core.apps import get_app, system_prompt
from zqyy_assets.core.llm.client import CallResult, StreamChunk, Usage
from zqyy_assets.core.llm.correction import Correction
from zqyy_assets.core.llm.errors import AttemptError, ErrorKind, classify_openai

# A local server (vLLM, Ollama) takes any key; the SDK insists on one.
NO_KEY = "EMPTY"


@cache
def json_schema_format(app_name: str) -> dict[str, Any]:
    """The app's answer model as an OpenAI ``response_format`` of type ``json_schema``."""
    return {
        "type": "json_schema",
        "json_schema": {"name": app_name, "schema": SCHEMAS[app_name].model_json_schema(), "strict": False},
    }


def messages_for(app_name: str, prompt: str, correction: Correction | None = None) -> list[dict[str, str]]:
    """[system: the app's repo system prompt, user: the prompt]; a re-ask goes on as turns:
    [assistant: the previous answer, user: what was wrong with it] (``correction.py``)."""
    messages = [{"role": "system", "content": system_prompt(app_name)}, {"role": "user", "content": prompt}]
    if correction is not None:
        messages += [
            {"role": "assistant", "content": correction.previous_answer},
            {"role": "user", "content": correction.follow_up()},
        ]
    return messages


def usage_of(usage: Any, model: str | None) -> Usage:
    """``usage.prompt_tokens`` / ``completion_tokens`` (absent: zero), priced at the answering model."""
    if usage is None:
        return Usage()
    tokens_in = max(int(getattr(usage, "prompt_tokens", 0) or 0), 0)
    tokens_out = max(int(getattr(usage, "completion_tokens", 0) or 0), 0)
    if not (tokens_in or tokens_out):
        tokens_in = max(int(getattr(usage, "total_tokens", 0) or 0), 0)  # a bare total is booked as input
    name = model or ""
    return Usage(tokens_in, tokens_out, name, ((name, tokens_in, tokens_out),) if name else ())


def error_from_openai(exc: BaseException, *, app_name: str) -> AttemptError:
    """The SDK's exception (or httpx's, mid-stream) as a classified ``AttemptError``."""
    if isinstance(exc, AttemptError):
        return exc
    import openai

    kind: ErrorKind
    status: int | None = None
    code: str | None
    if isinstance(exc, openai.APIStatusError):
        status, code = exc.status_code, exc.code
        kind, code = classify_openai(status, code), code or f"HTTP{status}"
        message = exc.message
    elif isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
        kind, code, message = "transient", "Timeout", f"{type(exc).__name__}: {exc}"
    elif isinstance(exc, openai.APIConnectionError):
        kind, code, message = "transient", "ConnectionError", f"{type(exc).__name__}: {exc.__cause__ or exc}"
    elif isinstance(exc, openai.APIResponseValidationError | json.JSONDecodeError):
        kind, code, message = "transient", "InvalidResponse", f"{type(exc).__name__}: {exc}"
    elif isinstance(exc, openai.APIError):  # an error event inside a stream: no status, its code decides
        kind, code, message = classify_openai(None, exc.code), exc.code or "StreamError", exc.message
    elif isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        kind, code, message = "transient", "StreamCut", f"{type(exc).__name__}: {exc}"
    elif isinstance(exc, httpx.TransportError | ConnectionError | OSError):
        kind, code, message = "transient", "ConnectionError", f"{type(exc).__name__}: {exc}"
    else:  # the SDK refusing our own arguments, or a bug: a resend would fail the same way
        kind, code, message = "permanent", type(exc).__name__, f"{type(exc).__name__}: {exc}"
    return AttemptError(message, kind=kind, app_name=app_name, code=code, status_code=status)


class OpenAIChatClient:
    """Sends single attempts to one OpenAI-compatible server with one key (thread-safe)."""

    def __init__(
        self, *, api_key: str | None, base_url: str | None, timeout_s: float, response_format: str = "json_schema"
    ) -> None:
        self._api_key = api_key or NO_KEY
        self._base_url = base_url
        self._timeout_s = timeout_s
        self.response_format = response_format
        self._sdk: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:
            if self._sdk is None:
                import openai

                self._sdk = openai.OpenAI(
                    api_key=self._api_key, base_url=self._base_url, timeout=self._timeout_s, max_retries=0
                )
            return self._sdk

    def close(self) -> None:
        with self._lock:
            sdk, self._sdk = self._sdk, None
        if sdk is not None:
            sdk.close()

    def _kwargs(
        self, app_name: str, model: str, prompt: str, timeout_s: float | None, correction: Correction | None = None
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": model,
            "messages": messages_for(app_name, prompt, correction),
            # A request never outlives its answer's deadline (``timeout_s``: what is left of it).
            "timeout": self._timeout_s if timeout_s is None else min(self._timeout_s, timeout_s),
        }
        if get_app(app_name).json_answer:
            kwargs["response_format"] = (
                json_schema_format(app_name) if self.response_format == "json_schema" else {"type": "json_object"}
            )
        return kwargs

    def complete(
        self,
        app_name: str,
        model: str,
        prompt: str,
        *,
        correction: Correction | None = None,
        timeout_s: float | None = None,
    ) -> CallResult:
        """One completion; ``correction`` re-asks after an invalid answer (as two more turns)."""
        try:
            kwargs = self._kwargs(app_name, model, prompt, timeout_s, correction)
            completion = self._client().chat.completions.create(**kwargs)
        except Exception as exc:  # network, time-out, error status: classified, never swallowed
            raise error_from_openai(exc, app_name=app_name) from exc
        usage = usage_of(completion.usage, completion.model or model)
        request_id = getattr(completion, "_request_id", None) or completion.id or None
        if not completion.choices:
            raise AttemptError(
                "the completion has no choices",
                kind="transient",
                app_name=app_name,
                code="EmptyAnswer",
                request_id=request_id,
                tokens_in=usage.tokens_in,
                tokens_out=usage.tokens_out,
            )
        choice = completion.choices[0]
        if choice.finish_reason == "content_filter":
            error = AttemptError(
                "the answer was withheld by the server's content filter",
                kind="permanent",
                app_name=app_name,
                code="content_filter",
                request_id=request_id,
                tokens_in=usage.tokens_in,
                tokens_out=usage.tokens_out,
            )
            error.model = usage.model or None
            raise error
        return CallResult(
            text=choice.message.content or "",
            usage=usage,
            session_id=None,
            request_id=request_id,
            finish_reason=choice.finish_reason,
        )

    def stream(
        self, app_name: str, model: str, prompt: str, *, timeout_s: float | None = None
    ) -> Iterator[StreamChunk]:
        """The answer's deltas; the last chunk (no choices) carries the usage. Errors as ``AttemptError``."""
        kwargs = self._kwargs(app_name, model, prompt, timeout_s)
        kwargs.update(stream=True, stream_options={"include_usage": True})
        try:
            with self._client().chat.completions.create(**kwargs) as events:
                for event in events:
                    choice = event.choices[0] if event.choices else None
                    yield StreamChunk(
                        text=(choice.delta.content or "") if choice is not None else "",
                        session_id=None,
                        request_id=event.id or None,
                        finish_reason=choice.finish_reason if choice is not None else None,
                        usage=usage_of(event.usage, event.model or model),
                    )
        except AttemptError:
            raise
        except Exception as exc:
            raise error_from_openai(exc, app_name=app_name) from exc
