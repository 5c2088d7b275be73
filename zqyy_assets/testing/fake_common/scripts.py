"""How a fake LLM server answers: scripted steps (shorthands such as ``"429"`` or ``"cut:3"``) and
per-app settings. Both fakes (DashScope, OpenAI-compatible) read the same steps; each frames the
step's status and code in its own wire format."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

DEFAULT_MODEL = "qwen-plus"


@dataclass(frozen=True)
class Step:
    kind: str = "ok"  # ok | error | invalid_json | bare_list | drop | cut | stream_error | timeout | hang
    status: int = 200
    code: str | None = None
    message: str | None = None
    after_chunks: int = 0  # for cut / stream_error
    delay_ms: float | None = None  # this response's latency, instead of the app's
    answer: Any = None  # this response's answer, instead of the app's (e.g. one outside the schema)
    session: bool = True  # False: the response names no session (as a service keeping none)


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
    if text in ("invalid_json", "bare_list", "drop", "timeout"):
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
    if head == "hang":  # an upstream that never answers: silent for that long, then the connection closes
        return Step("hang", delay_ms=float(rest or 60_000))
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
    # A fault mix: step shorthand -> probability, drawn (seeded) for each request no queued step
    # answers; what is left of 1 is ``ok``. E.g. {"429": 0.1, "500": 0.05, "hang:5000": 0.02}.
    mix: dict[str, float] | None = None


def check_mix(mix: dict[str, float]) -> dict[str, float]:
    """A valid fault mix (known steps, probabilities summing to at most 1), or ValueError."""
    for spec, probability in mix.items():
        parse_step(spec)
        if not 0 <= float(probability) <= 1:
            raise ValueError(f"the probability of {spec!r} must be between 0 and 1, not {probability!r}")
    if sum(float(p) for p in mix.values()) > 1 + 1e-9:
        raise ValueError("the fault mix's probabilities add up to more than 1")
    return {spec: float(p) for spec, p in mix.items()}


def draw(mix: dict[str, float], roll: float) -> Step:
    """The step a roll in [0, 1) picks from a mix (in the mix's order), ``ok`` past its sum."""
    total = 0.0
    for spec, probability in mix.items():
        total += probability
        if roll < total:
            return parse_step(spec)
    return Step()
