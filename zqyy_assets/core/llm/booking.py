"""How a call's outcome is booked: its ledger row, the breaker, and its alert.

``LLMService`` (``service.py``) and the chat's stream (``stream.py``) call these at each end of
a call: a guard's refusal (``admit``), a stop before sending, a success, a failure or timeout
after its attempts, an interruption (no alert: nobody failed), an answer rejected as invalid.
Every end that is not a success raises an alert (``call_alerts.py``).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import psycopg

from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.llm import ledger
from zqyy_assets.core.llm.call_alerts import alert_call
from zqyy_assets.core.llm.errors import AttemptError, GuardRefused, PermanentLLMError
from zqyy_assets.core.llm.guards import Guards
from zqyy_assets.core.llm.ledger import ms_since
from zqyy_assets.core.llm.retry import RetriesExhausted, Retrying
from zqyy_assets.core.pricing import PriceTable

logger = logging.getLogger(__name__)
T = TypeVar("T")

# How long the end of a call waits for Postgres to come back (a restart, a fail-over) before it
# gives up: the request was sent and paid for, so its row should say so.
BOOKING_PATIENCE_S = 30.0


class CallBooking(ABC):
    """The booking half of ``LLMService``, which provides the connections, guards and prices."""

    guards: Guards
    prices: PriceTable

    @abstractmethod
    def connection(self) -> AbstractContextManager[DictConnection]:
        """A connection to book in (the service's pool)."""

    def durably(self, book: Callable[[DictConnection], T], patience_s: float = BOOKING_PATIENCE_S) -> T:
        """``book(conn)`` on a pooled connection, tried again while Postgres is away (a dead pooled
        connection, a server restarting) for up to ``patience_s``; then the error propagates."""
        deadline, wait = time.monotonic() + patience_s, 0.25
        while True:
            try:
                with self.connection() as conn:
                    return book(conn)
            except psycopg.OperationalError as exc:
                if time.monotonic() + wait > deadline:
                    raise
                logger.warning("booking a call: the database is away (%s); trying again in %.2f s", exc, wait)
                time.sleep(wait)
                wait = min(wait * 2, 4.0)

    def note_attempt(self, ledger_id: int, attempts: int) -> None:
        """Before each request: its row counts it, so a process that dies mid-request (or whose
        end cannot be booked) leaves in the ledger the requests it sent."""
        with self.connection() as conn:
            ledger.note_attempt(conn, ledger_id, attempts)

    def admit(self, record: ledger.CallRecord) -> int:
        """The guards' ``admit``; a refusal raises its alert before it propagates."""
        try:
            return self.guards.admit(record)
        except GuardRefused as refused:
            with self.connection() as conn:
                alert_call(conn, record, refused.reason, refused.message, refused.ledger_id)
            raise

    def stop_before_send(self, record: ledger.CallRecord, error: PermanentLLMError) -> PermanentLLMError:
        with self.connection() as conn:
            ledger_id = ledger.record_failure_before_send(conn, record, error.code or "ConfigError", error.message)
            alert_call(conn, record, "failed", f"{error.code}: {error.message}", ledger_id)
        return error

    def book_success(self, ledger_id: int, record: ledger.CallRecord, **fields: Any) -> None:
        def book(conn: DictConnection) -> None:
            ledger.finish_call(conn, ledger_id, status="success", **fields)
            if not record.fallback_for:  # the breaker is the primary route's (``providers.py``)
                self.guards.call_succeeded(conn, record.app_name)

        self.durably(book)
        self.guards.call_ended(ledger_id, "success")  # its in-flight slot (after: one connection at a time)

    def retry_listener(
        self, ledger_id: int, then: Callable[[int, AttemptError, float], None]
    ) -> Callable[[int, AttemptError, float], None]:
        """A retry loop's ``on_retry``: ``then`` hears each retried attempt, and a throttling
        answer tells the in-flight cap (``inflight.py``), which may cut it."""

        def heard(attempt: int, error: AttemptError, delay: float) -> None:
            then(attempt, error, delay)
            if error.kind == "throttled":
                self.guards.attempt_throttled(ledger_id)

        return heard

    def book_failure(
        self,
        ledger_id: int,
        record: ledger.CallRecord,
        failure: RetriesExhausted,
        started: float,
        partial: str | None = None,
    ) -> float:
        """Book the failed call (its attempts' tokens priced too); returns that cost in CNY."""
        err, app_name = failure.error, record.app_name
        outcome = "timeout" if failure.timed_out else "failed"
        cost = self.prices.cost(err.model, failure.tokens_in, failure.tokens_out)

        def book(conn: DictConnection) -> str:
            ledger.finish_call(
                conn,
                ledger_id,
                status=outcome,
                tokens_in=failure.tokens_in,
                tokens_out=failure.tokens_out,
                latency_ms=ms_since(started),
                attempts=failure.attempts,
                response_text=partial if partial is not None else err.response_text,
                request_id=err.request_id,
                error_code=err.code,
                error_message=err.message[:2000],
                cost_cny=cost,
            )
            state = "closed" if record.fallback_for else self.guards.call_failed(conn, app_name, err.code)
            alert_call(conn, record, outcome, f"{err.code}: {err.message[:500]}", ledger_id)
            return state

        state = self.durably(book)
        self.guards.call_ended(ledger_id, "throttled" if err.kind == "throttled" else "other")
        if state == "open":
            logger.warning("circuit breaker for %s is open after %s", app_name, err.code)
        return cost

    def book_interrupted(self, ledger_id: int, started: float, code: str, message: str, **fields: Any) -> None:
        """The caller stopped (interrupt, run termination, a reader gone): keep what came, blame no one."""
        self.durably(
            lambda conn: ledger.finish_call(
                conn,
                ledger_id,
                status="failed",
                latency_ms=ms_since(started),
                error_code=code,
                error_message=message,
                **fields,
            )
        )
        self.guards.call_ended(ledger_id, "other")

    def note_reask(self, ledger_id: int, request_prompt: str) -> None:
        """The call's next attempt re-asks (``correction.py``): its row's prompt becomes the re-ask's."""
        with self.connection() as conn:
            ledger.note_reask(conn, ledger_id, request_prompt)

    def reject_call(self, ledger_id: int, reason: str) -> None:
        """A call whose answer the caller found invalid is booked failed, with its alert."""
        with self.connection() as conn:
            if ledger.reject_answer(conn, ledger_id, reason):
                record = ledger.call_record_of(conn, ledger_id)
                alert_call(conn, record, "failed", f"InvalidAnswer: {reason[:500]}", ledger_id)


def time_left(retrying: Retrying, app_name: str) -> float | None:
    """What is left of the answer's deadline for the next request; none left ends the call."""
    left = retrying.remaining()
    if left is not None and left <= 0:
        raise AttemptError(
            "answer deadline passed before the request", kind="permanent", app_name=app_name, code="DeadlineExceeded"
        )
    return left
