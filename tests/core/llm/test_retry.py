"""The one retry loop: what it retries, how long it waits, what the failed attempts cost."""

from __future__ import annotations

import random

import pytest

from zqyy_assets.core.llm.errors import AttemptError, PermanentLLMError, TransientLLMError
from zqyy_assets.core.llm.retry import Backoff, RetriesExhausted, Retrying


def _error(kind: str = "transient", tokens: int = 0, code: str = "InternalError") -> AttemptError:
    return AttemptError("boom", kind=kind, app_name="app3_clue", code=code, tokens_in=tokens, tokens_out=1)


def _failing(*errors: AttemptError, value: str = "answer"):
    pending = list(errors)

    def attempt() -> str:
        if pending:
            raise pending.pop(0)
        return value

    return attempt


def test_transient_errors_are_retried_and_their_tokens_counted() -> None:
    waits: list[float] = []
    retrying = Retrying(max_attempts=3, wait=lambda n, err: n * 0.5, sleep=waits.append)
    assert retrying.call(_failing(_error(tokens=10), _error(tokens=20))) == "answer"
    assert (retrying.attempts, retrying.tokens_in, retrying.tokens_out) == (3, 30, 2)
    assert waits == [0.5, 1.0]


def test_a_permanent_error_stops_at_once() -> None:
    retrying = Retrying(max_attempts=3, sleep=pytest.fail)
    with pytest.raises(RetriesExhausted) as caught:
        retrying.call(_failing(_error("permanent", code="InvalidApiKey")))
    assert caught.value.attempts == 1
    final = caught.value.as_llm_error()
    assert isinstance(final, PermanentLLMError) and final.code == "InvalidApiKey" and final.attempts == 1


def test_the_last_attempt_is_final_and_transient() -> None:
    retrying = Retrying(max_attempts=2)
    with pytest.raises(RetriesExhausted) as caught:
        retrying.call(_failing(_error(tokens=5), _error(tokens=7), _error()))
    assert (caught.value.attempts, caught.value.tokens_in) == (2, 12)
    final = caught.value.as_llm_error()
    assert isinstance(final, TransientLLMError) and "after 2 attempt(s)" in str(final)


def test_retryable_can_refuse_a_retry() -> None:
    spent = []
    retrying = Retrying(max_attempts=5, retryable=lambda err: len(spent) < 2)

    def attempt() -> str:
        spent.append(1)
        raise _error()

    with pytest.raises(RetriesExhausted) as caught:
        retrying.call(attempt)
    assert caught.value.attempts == 2 and len(spent) == 2


def test_other_exceptions_leave_the_loop() -> None:
    retrying = Retrying(max_attempts=3)
    with pytest.raises(KeyError):
        retrying.call(_failing(KeyError("not an attempt error")))  # type: ignore[arg-type]
    assert retrying.attempts == 1


def test_the_loop_works_inside_a_generator() -> None:
    pending = [_error()]

    def stream():
        for attempt in Retrying(max_attempts=2):
            with attempt:
                yield "part"
                if pending:
                    raise pending.pop()

    assert list(stream()) == ["part", "part"]


def test_backoff_doubles_waits_longer_when_throttled_and_is_capped() -> None:
    backoff = Backoff(base_s=1.0, max_s=20.0, throttle_factor=4.0, rng=random.Random(1))
    for attempt, kind, full in [
        (1, "transient", 1.0),
        (2, "transient", 2.0),
        (1, "throttled", 4.0),
        (5, "throttled", 20.0),
    ]:
        delay = backoff.delay(attempt, kind)
        assert full / 2 <= delay <= full  # half fixed, half random
