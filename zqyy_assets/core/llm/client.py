"""One attempt at a DashScope Application call through the ``dashscope`` SDK, nothing more.

Retries (``retry.py``), guards (``guards.py``) and the ledger (``ledger.py``) live elsewhere;
this module sends one request and turns the SDK's response (or exception) into a result or a
classified ``AttemptError``, and says what a request carries when it re-asks after an invalid
answer (``dashscope_request``, ``Turn``; ``correction.py``).

Two SDK details shape this code (dashscope 2.0.2, read from its source):

- The base URL is read from the environment only at import, into the module attribute
  ``dashscope.base_http_api_url``. Mutating that global per call would race between threads
  aiming at different servers, so every call passes ``base_address=`` instead, which
  ``Application.call`` forwards to ``_build_api_request``.
- ``HttpRequest`` resends a request once, silently, when the send raises
  ``requests.ConnectionError``. That hidden resend would double the requests behind one of our
  attempts, so calls go through ``_OneSendSession``, which surfaces a dropped connection as our
  own ``ConnectionDropped`` and leaves the decision to our retry loop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from zqyy_assets.core.llm.correction import Correction
from zqyy_assets.core.llm.errors import (
    AttemptError,
    error_from_exception,
    error_from_response,
)


def _application() -> Any:
    """The SDK's ``Application``, imported on first use: importing ``dashscope`` costs ~0.8 s,
    paid on every run launch if done when the code location loads."""
    from dashscope import Application

    return Application


class ConnectionDropped(ConnectionError):
    """The connection broke before a response arrived (not a ``requests`` error, on purpose)."""


class _OneSendSession(requests.Session):
    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            return super().request(*args, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            raise ConnectionDropped(str(exc)) from exc


_session: _OneSendSession | None = None
_session_lock = threading.Lock()


def shared_session() -> requests.Session:
    """One pooled session per process; sized for an asset's bounded concurrency."""
    global _session
    with _session_lock:
        if _session is None:
            session = _OneSendSession()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _session = session
        return _session


@dataclass(frozen=True)
class Usage:
    tokens_in: int = 0
    tokens_out: int = 0
    model: str = ""
    # (model, tokens in, tokens out) of each ``usage.models[*]`` entry: each is priced at its model.
    parts: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class CallResult:
    text: str
    usage: Usage
    session_id: str | None
    request_id: str | None
    finish_reason: str | None


@dataclass(frozen=True)
class StreamChunk:
    text: str  # the delta (incremental output)
    session_id: str | None
    request_id: str | None
    finish_reason: str | None
    usage: Usage  # cumulative so far, as the service reports it


def _field(source: Any, key: str, default: Any = None) -> Any:
    if source is None:
        return default
    if isinstance(source, dict):
        return source.get(key, default)
    return getattr(source, key, default)


def _int(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def parse_usage(usage: Any) -> Usage:
    """Tokens from any usage shape the service sends.

    ``{"models": [{"model_id", "input_tokens", "output_tokens"}]}`` (apps), else
    ``{"input_tokens", "output_tokens"}``, else ``{"total_tokens"}``; a bare total is booked as
    tokens in, so the budget's totals stay right even when the split is unknown.
    """
    if not usage:
        return Usage()
    models = _field(usage, "models")
    if models:
        names = []
        parts = []
        for item in models:
            part_in, part_out = _int(_field(item, "input_tokens")), _int(_field(item, "output_tokens"))
            name = str(_field(item, "model_id") or "")
            parts.append((name, part_in, part_out))
            if name and name not in names:
                names.append(name)
        tokens_in, tokens_out = sum(p[1] for p in parts), sum(p[2] for p in parts)
        return Usage(tokens_in, tokens_out, ",".join(names), tuple(parts))
    tokens_in, tokens_out = _int(_field(usage, "input_tokens")), _int(_field(usage, "output_tokens"))
    if tokens_in or tokens_out:
        return Usage(tokens_in, tokens_out)
    return Usage(_int(_field(usage, "total_tokens")), 0)


class DashScopeClient:
    """Sends single attempts to one DashScope endpoint with one key (thread-safe, no global state)."""

    def __init__(self, *, api_key: str, base_url: str | None, workspace: str | None, timeout_s: float) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._workspace = workspace
        self._timeout_s = timeout_s

    def _kwargs(
        self, app_id: str, prompt: str, session_id: str | None, biz_params: dict | None, timeout_s: float | None
    ) -> dict:
        kwargs: dict[str, Any] = {
            "app_id": app_id,
            "prompt": prompt,
            "api_key": self._api_key,
            # A request never outlives its answer's deadline (``timeout_s``: what is left of it).
            "request_timeout": self._timeout_s if timeout_s is None else min(self._timeout_s, timeout_s),
            "session": shared_session(),
        }
        if self._base_url:
            kwargs["base_address"] = self._base_url
        if self._workspace:
            kwargs["workspace"] = self._workspace
        if session_id:
            kwargs["session_id"] = session_id
        if biz_params:
            kwargs["biz_params"] = biz_params
        return kwargs

    def complete(
        self,
        app_name: str,
        app_id: str,
        prompt: str,
        *,
        session_id: str | None = None,
        biz_params: dict | None = None,
        timeout_s: float | None = None,
    ) -> CallResult:
        try:
            response = _application().call(**self._kwargs(app_id, prompt, session_id, biz_params, timeout_s))
        except Exception as exc:  # network, time-out, unparsable body: classified, never swallowed
            raise error_from_exception(exc, app_name=app_name) from exc
        _raise_for_status(response, app_name)
        output = response.output
        return CallResult(
            text=_field(output, "text") or "",
            usage=parse_usage(response.usage),
            session_id=_field(output, "session_id") or None,
            request_id=response.request_id or None,
            finish_reason=_field(output, "finish_reason"),
        )

    def stream(
        self,
        app_name: str,
        app_id: str,
        prompt: str,
        *,
        session_id: str | None = None,
        biz_params: dict | None = None,
        timeout_s: float | None = None,
    ) -> Iterator[StreamChunk]:
        """The SDK's blocking generator, chunk by chunk; an ``event:error`` or a cut raises ``AttemptError``."""
        kwargs = self._kwargs(app_id, prompt, session_id, biz_params, timeout_s)
        kwargs.update(stream=True, incremental_output=True)
        try:
            responses = _application().call(**kwargs)
            for response in responses:
                _raise_for_status(response, app_name)
                output = response.output
                yield StreamChunk(
                    text=_field(output, "text") or "",
                    session_id=_field(output, "session_id") or None,
                    request_id=response.request_id or None,
                    finish_reason=_field(output, "finish_reason"),
                    usage=parse_usage(response.usage),
                )
        except AttemptError:
            raise
        except Exception as exc:
            raise error_from_exception(exc, app_name=app_name) from exc


def dashscope_request(prompt: str, session_id: str | None, correction: Correction | None) -> tuple[str, str | None]:
    """What one Application request carries, ``(prompt, session_id)``, when it may be a re-ask.

    ``Application.call`` (dashscope 2.0.2) takes ``prompt``, ``session_id`` and ``messages``;
    every call of this project sends a ``prompt`` (the console app owns the system prompt), and
    a re-ask keeps to that, so a correction travels as a follow-up turn:

    - with ``session_id`` (the session the invalid answer came back in), only
      ``correction.follow_up()`` is sent: the service already holds the prompt and the invalid
      answer in that session, so neither is sent twice;
    - without one (the service returned none), one self-contained prompt,
      ``correction.standalone(prompt)``: the prompt, the previous answer, then the follow-up.
    """
    if correction is None:
        return prompt, session_id
    if session_id:
        return correction.follow_up(), session_id
    return correction.standalone(prompt), None


@dataclass
class Turn:
    """What a call's next request carries: its prompt, or a re-ask once an answer was not JSON.

    The service keeps one per call. After ``parse`` met an answer that is not JSON, every later
    attempt of the call is a re-ask (``dashscope_request``) in the session that answer came
    back in, and the first of them hands ``note`` what the ledger row's ``request_prompt``
    becomes (``Correction.standalone``)."""

    prompt: str
    session_id: str | None
    correction: Correction | None = None
    _unnoted: bool = False

    def take_note(self, note: Callable[[str], None]) -> None:
        """Hand ``note`` the re-ask's ledger prompt, once, when the next request is the first re-ask."""
        if self.correction is not None and self._unnoted:
            note(self.correction.standalone(self.prompt))
            self._unnoted = False

    def next_request(self, note: Callable[[str], None]) -> tuple[str, str | None]:
        """``(prompt, session_id)`` of the next DashScope request."""
        self.take_note(note)
        return dashscope_request(self.prompt, self.session_id, self.correction)

    def parse(self, result: CallResult, app_name: str) -> dict:
        """The answer's JSON (``parse_answer``); one that is not JSON makes the next request a re-ask."""
        try:
            return parse_answer(result.text, app_name=app_name, usage=result.usage, request_id=result.request_id)
        except AttemptError as error:
            self.correction = Correction.not_json(result.text, error.message)
            self.session_id = result.session_id or self.session_id
            self._unnoted = True
            raise


def _raise_for_status(response: Any, app_name: str) -> None:
    """A non-200 response (a call's, or one event of a stream) as a classified ``AttemptError``."""
    if response.status_code != 200:
        raise error_from_response(
            status_code=response.status_code,
            code=response.code,
            message=response.message,
            request_id=response.request_id,
            app_name=app_name,
        )


def parse_answer(text: str, *, app_name: str, usage: Usage, request_id: str | None) -> dict:
    """The JSON answer as a dict; a bare list is wrapped as ``{"insights": [...]}``.

    A Markdown code fence around the JSON is tolerated (models add one often); anything else
    that is not a JSON object or list is an invalid answer, retried like a transient error.
    """
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        if body.rstrip().endswith("```"):
            body = body.rstrip()[:-3]

    def invalid(message: str) -> AttemptError:
        error = AttemptError(
            message,
            kind="transient",
            app_name=app_name,
            code="InvalidJSON",
            request_id=request_id,
            tokens_in=usage.tokens_in,
            tokens_out=usage.tokens_out,
            response_text=text,
        )
        error.model = usage.model or None
        return error

    try:
        parsed = json.loads(body)
    except json.JSONDecodeError as exc:
        raise invalid(f"answer is not valid JSON ({exc.msg} at {exc.pos}): {text[:200]!r}") from exc
    if isinstance(parsed, list):
        parsed = {"insights": parsed}
    if not isinstance(parsed, dict):
        raise invalid(f"answer is JSON {type(parsed).__name__}, expected an object")
    return parsed
