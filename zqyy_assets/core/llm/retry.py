"""The one retry loop of the project: attempts, backoff, and what the failed attempts cost.

Used for a call's requests (``service.call_app``), a stream's start (``stream.stream_chat``)
and an answer outside its schema asked again (``answering``)::

    retrying = Retrying(max_attempts=3, wait=backoff.wait, sleep=time.sleep)
    for attempt in retrying:
        with attempt:
            result = send()  # an AttemptError here is recorded, then retried or final

Only ``AttemptError`` is retried: any other exception leaves the loop at once. A permanent
error, or one ``retryable`` refuses, or the last attempt's, raises ``RetriesExhausted`` naming
the error, the attempts made and the tokens the failed attempts cost (an invalid answer was
paid for too). The loop works inside a generator, so a stream can yield from an attempt.

``on_retry(attempt, error, delay)`` hears of each failed attempt that is retried (the call's
span records it). A ``deadline`` (a ``clock()`` instant) bounds all the attempts together: no attempt starts, and
no backoff is slept, past it; the loop then raises ``RetriesExhausted`` with a
``DeadlineExceeded`` error (``timed_out``). ``remaining()`` tells an attempt how long its own
request may take.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TypeVar

from zqyy_assets.core.llm.errors import (
    AnswerTimeout,
    AttemptError,
    ErrorKind,
    LLMError,
    PermanentLLMError,
    TransientLLMError,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """``base * 2**(n-1)`` seconds after attempt n (``throttle_factor`` times longer for
    ``Throttling*``), capped at ``max_s``, half fixed and half random so racing workers spread out."""

    base_s: float
    max_s: float
    throttle_factor: float
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int, kind: ErrorKind) -> float:
        delay = self.base_s * (2 ** (attempt - 1))
        if kind == "throttled":
            delay *= self.throttle_factor
        delay = min(delay, max(self.max_s, self.base_s))
        return delay / 2 + self.rng.uniform(0, delay / 2)

    def wait(self, attempt: int, error: AttemptError) -> float:
        return self.delay(attempt, error.kind)


def no_wait(attempt: int, error: AttemptError) -> float:
    return 0.0


def not_permanent(error: AttemptError) -> bool:
    return error.kind != "permanent"


# An attempt's error codes that mean time ran out: a request's own timeout, the answer's deadline.
TIMEOUT_CODES = frozenset({"Timeout", "DeadlineExceeded"})


class RetriesExhausted(Exception):
    """The final failed attempt, with what every failed attempt cost."""

    def __init__(self, error: AttemptError, attempts: int, tokens_in: int, tokens_out: int) -> None:
        super().__init__(str(error))
        self.error, self.attempts, self.tokens_in, self.tokens_out = error, attempts, tokens_in, tokens_out

    @property
    def timed_out(self) -> bool:
        """The call ended because time ran out (its ledger status is ``timeout``)."""
        return self.error.code in TIMEOUT_CODES

    def as_llm_error(self) -> LLMError:
        """What the caller sees: permanent stays permanent, a timeout is ``AnswerTimeout``,
        anything else is transient."""
        err = self.error
        if self.timed_out:
            return AnswerTimeout(
                f"timeout after {self.attempts} attempt(s): {err.message}",
                app_name=err.app_name,
                code=err.code,
                request_id=err.request_id,
                attempts=self.attempts,
            )
        if err.kind == "permanent":
            return PermanentLLMError(
                err.message,
                app_name=err.app_name,
                code=err.code,
                status_code=err.status_code,
                request_id=err.request_id,
                attempts=self.attempts,
            )
        return TransientLLMError(
            f"{err.message} (after {self.attempts} attempt(s))",
            app_name=err.app_name,
            code=err.code,
            status_code=err.status_code,
            request_id=err.request_id,
            attempts=self.attempts,
        )


class Attempt:
    """One attempt's ``with`` block: records an ``AttemptError`` instead of raising it."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.error: AttemptError | None = None

    def __enter__(self) -> Attempt:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if isinstance(exc, AttemptError):
            self.error = exc
            return True
        return False


class Retrying:
    """Attempts until one succeeds; see the module docstring."""

    def __init__(
        self,
        *,
        max_attempts: int,
        wait: Callable[[int, AttemptError], float] = no_wait,
        sleep: Callable[[float], None] = time.sleep,
        retryable: Callable[[AttemptError], bool] = not_permanent,
        label: str = "",
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_retry: Callable[[int, AttemptError, float], None] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self._wait, self._sleep, self._retryable, self._label = wait, sleep, retryable, label
        self.deadline, self._clock = deadline, clock
        self._on_retry = on_retry  # (attempt, its error, the wait before the next): a span event
        self._start = clock()
        self.attempts = 0
        self.tokens_in = self.tokens_out = 0  # spent by the failed attempts

    def remaining(self) -> float | None:
        """Seconds left before the deadline (None: no deadline)."""
        return None if self.deadline is None else self.deadline - self._clock()

    def _out_of_time(self, number: int, last: AttemptError) -> RetriesExhausted:
        total = self.deadline - self._start if self.deadline is not None else 0.0
        err = AttemptError(
            f"answer deadline of {total:g} s passed after {number} attempt(s); last error {last.code}: "
            f"{last.message[:200]}",
            kind="transient",
            app_name=last.app_name,
            code="DeadlineExceeded",
            request_id=last.request_id,
            response_text=last.response_text,
        )
        return RetriesExhausted(err, number, self.tokens_in, self.tokens_out)

    def __iter__(self) -> Iterator[Attempt]:
        self._start = self._clock()
        for number in range(1, self.max_attempts + 1):
            self.attempts = number
            attempt = Attempt(number)
            yield attempt
            err = attempt.error
            if err is None:
                return
            self.tokens_in += err.tokens_in
            self.tokens_out += err.tokens_out
            if number == self.max_attempts or not self._retryable(err):
                raise RetriesExhausted(err, number, self.tokens_in, self.tokens_out) from err
            delay = self._wait(number, err)
            left = self.remaining()
            if left is not None and left <= delay:
                # The next attempt could not start before the deadline: stop now, sleep nothing.
                raise self._out_of_time(number, err) from err
            logger.info(
                "%s attempt %d/%d failed (%s: %s); retrying in %.2f s",
                self._label or err.app_name,
                number,
                self.max_attempts,
                err.code,
                err.message[:200],
                delay,
            )
            if self._on_retry is not None:
                self._on_retry(number, err, delay)
            if delay > 0:
                self._sleep(delay)

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` under this loop; its value once an attempt succeeds."""
        for attempt in self:
            with attempt:
                return fn()
        raise AssertionError("unreachable: the loop returns or raises")
