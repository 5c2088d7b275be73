"""Error classes of the LLM layer and the classification of DashScope and OpenAI-compatible failures.

Every failed attempt is classified into one of three kinds:

- ``permanent``: retrying cannot help (bad key, bad parameter, content refused by data
  inspection, access denied, account in arrears, unknown 4xx). The resource turns these into
  ``dagster.Failure(allow_retries=False)`` so the asset's RetryPolicy does not re-run the step.
- ``throttled``: ``Throttling*`` codes (HTTP 429 or in-stream). Retried, waiting longer.
- ``transient``: 5xx, 408/429 without a code, time-outs, dropped connections, cut streams and
  answers that are not valid JSON. Retried with exponential backoff and jitter.

In a stream the SDK reports an ``event:error`` with ``status_code`` 400 whatever the real status
was (it only reads ``status:`` lines, the service sends ``:HTTP_STATUS/...`` comments), so the
``code`` decides, never the status alone.

An OpenAI-compatible server answers errors as ``{"error": {"code", "type", "message"}}`` with
the HTTP status (``classify_openai``): 429, 408 and 5xx are transient (429 throttled), 400, 401,
403, 404 and the other 4xx permanent; its ``code`` overrides the status where it is plainer
(``insufficient_quota`` is a 429 no retry fixes). The SDK's exceptions are mapped in
``openai_client.py``.

Some permanent errors are about the input itself (``about_input``): content refused by data
inspection or a content filter, a prompt over the context length. Another provider would be
asked the same input, so those never fall back (``providers.py``).

This module does not import Dagster: the API process uses the same classes.
"""

from __future__ import annotations

from typing import Literal

import requests

ErrorKind = Literal["permanent", "transient", "throttled"]

# Exact codes and prefixes (``AccessDenied.Unpurchased``...) that no retry can fix.
PERMANENT_CODES = frozenset({"InvalidApiKey", "InvalidParameter", "DataInspectionFailed", "Arrearage"})
PERMANENT_PREFIXES = ("AccessDenied", "InvalidApiKey", "DataInspectionFailed", "Arrearage")
THROTTLING_PREFIX = "Throttling"

# Parts of error codes (DashScope's and OpenAI-compatible servers', compared in lower case)
# that mean the input itself was refused.
INPUT_REFUSAL_MARKERS = (
    "datainspection",
    "data_inspection",
    "content_filter",
    "contentfilter",
    "content_policy",
    "context_length",
)
# OpenAI-compatible codes no retry can fix whatever the status says, and those that mean "slow down".
OPENAI_PERMANENT_CODES = frozenset(
    {"insufficient_quota", "invalid_api_key", "model_not_found", "invalid_parameter", "access_denied", "arrearage"}
)
OPENAI_THROTTLING_CODES = frozenset({"rate_limit_exceeded", "rate_limit_error", "requests", "tokens"})


class LLMError(Exception):
    """Base of every error the LLM layer raises."""

    def __init__(
        self,
        message: str,
        *,
        app_name: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        attempts: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.app_name = app_name
        self.code = code
        self.status_code = status_code
        self.request_id = request_id
        self.attempts = attempts

    def __str__(self) -> str:
        where = f"{self.app_name}: " if self.app_name else ""
        code = f"{self.code}: " if self.code else ""
        return f"{where}{code}{self.message}"


class AttemptError(LLMError):
    """One failed attempt, classified. Internal to the retry loop; never escapes the service."""

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        tokens_in: int = 0,
        tokens_out: int = 0,
        response_text: str | None = None,
        **kw,
    ) -> None:
        super().__init__(message, **kw)
        self.kind: ErrorKind = kind
        self.tokens_in = tokens_in  # an invalid answer still cost tokens
        self.tokens_out = tokens_out
        self.response_text = response_text
        self.model: str | None = None  # the model whose tokens these are, when the service said (priced so)


class PermanentLLMError(LLMError):
    """A failure no retry can fix. ``LLMResource`` re-raises it as ``dg.Failure(allow_retries=False)``."""


class LLMConfigError(PermanentLLMError):
    """The call cannot be made as configured (no app id, no API key, unknown provider)."""


class TransientLLMError(LLMError):
    """A retryable failure that persisted through every attempt this call was allowed."""


class AnswerTimeout(TransientLLMError):
    """The answer's deadline (``answer_deadline_seconds``, across all its attempts) passed, or its
    last request timed out; ledgered as ``timeout``."""


class StreamInterrupted(TransientLLMError):
    """A stream that broke after yielding part of its answer (``partial_text``)."""

    def __init__(self, message: str, *, partial_text: str = "", **kw) -> None:
        super().__init__(message, **kw)
        self.partial_text = partial_text


class GuardRefused(LLMError):
    """A guard refused the call before any request was sent; ``reason`` is the ledger status,
    ``ledger_id`` the refusal's ledger row."""

    reason: str = "refused"

    def __init__(self, message: str, *, retry_after_s: float | None = None, ledger_id: int | None = None, **kw) -> None:
        super().__init__(message, code=self.reason, **kw)
        self.retry_after_s = retry_after_s
        self.ledger_id = ledger_id


class CircuitOpen(GuardRefused):
    reason = "circuit_open"


class RateLimited(GuardRefused):
    reason = "rate_limited"


class BudgetExceeded(GuardRefused):
    reason = "budget_exceeded"


def classify_code(code: str | None, status_code: int | None) -> ErrorKind:
    """Classify a DashScope error by its ``code`` first, the HTTP status only when the code is silent."""
    code = code or ""
    if code in PERMANENT_CODES or code.startswith(PERMANENT_PREFIXES):
        return "permanent"
    if code.startswith(THROTTLING_PREFIX):
        return "throttled"
    status = int(status_code or 0)
    if status == 429:
        return "throttled"
    if status >= 500 or status == 408:
        return "transient"
    if code in ("", "Unknown") and status in (0, 400):
        # The SDK reports a garbled stream line or an unparsable body as 400/"Unknown".
        return "transient"
    if 400 <= status < 500:
        return "permanent"
    return "transient"


def error_from_response(
    *, status_code: int | None, code: str | None, message: str | None, request_id: str | None, app_name: str
) -> AttemptError:
    kind = classify_code(code, status_code)
    text = message if isinstance(message, str) else str(message or "")
    return AttemptError(
        text or f"HTTP {status_code}",
        kind=kind,
        app_name=app_name,
        code=code or f"HTTP{status_code}",
        status_code=status_code,
        request_id=request_id or None,
    )


def error_from_exception(exc: BaseException, *, app_name: str) -> AttemptError:
    """Classify an exception raised while sending or reading (network, time-out, broken body)."""
    if isinstance(exc, AttemptError):
        return exc
    kind: ErrorKind = "transient"
    if isinstance(exc, requests.exceptions.Timeout):
        code = "Timeout"
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError):
        code = "StreamCut"
    elif isinstance(exc, (requests.exceptions.ConnectionError, ConnectionError)):
        code = "ConnectionError"
    elif isinstance(exc, requests.exceptions.JSONDecodeError):  # a 200 whose body is not JSON
        code = "InvalidResponse"
    elif isinstance(exc, (requests.exceptions.RequestException, OSError)):
        code = type(exc).__name__
    else:
        # The SDK's own input errors (InputRequired, AuthenticationError...) or a bug: a resend
        # would fail the same way.
        kind, code = "permanent", type(exc).__name__
    return AttemptError(f"{type(exc).__name__}: {exc}", kind=kind, app_name=app_name, code=code)


def about_input(code: str | None) -> bool:
    """The error says the input itself was refused (content inspection, context length)."""
    text = (code or "").lower()
    return any(marker in text for marker in INPUT_REFUSAL_MARKERS)


def classify_openai(status_code: int | None, code: str | None) -> ErrorKind:
    """Classify an OpenAI-compatible error by its status, the ``code`` where it is plainer; an
    in-stream error has no status, so its code decides (unknown: transient)."""
    code = (code or "").strip()
    if about_input(code) or code in OPENAI_PERMANENT_CODES:
        return "permanent"
    if code in OPENAI_THROTTLING_CODES or code.startswith(THROTTLING_PREFIX):
        return "throttled"
    status = int(status_code or 0)
    if status == 429:
        return "throttled"
    if status >= 500 or status == 408 or status == 0:
        return "transient"
    return "permanent" if 400 <= status < 500 else "transient"
