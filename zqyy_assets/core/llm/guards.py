"""The guards before every LLM call, run in order: circuit breaker, rate limit, a slot under the
cap on calls in flight (``inflight.py``), budget (tokens and CNY).

Run processes (Dagster's run workers) and the API all call the LLM, so a guard held in memory
would only see its own process: each guard is a short transaction on a ``biz`` table
(``breaker.py``, ``rate_limit.py``, ``budget.py``), with Postgres' clock as the one clock.
A refusal writes its ledger row and raises ``CircuitOpen`` / ``RateLimited`` /
``BudgetExceeded``; an admitted call gets its ``running`` row from the budget guard and holds
its slot until the call is booked (``call_ended``); no slot within the wait is ``RateLimited``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import psycopg

from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.llm import breaker, budget, inflight, rate_limit
from zqyy_assets.core.llm.errors import BudgetExceeded, CircuitOpen, RateLimited
from zqyy_assets.core.llm.ledger import CallRecord, record_refusal
from zqyy_assets.core.llm.settings import MAX_REQUESTS_PER_ANSWER, LLMSettings
from zqyy_assets.core.pricing import PriceTable

Connect = Callable[[], AbstractContextManager[DictConnection]]
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardSettings:
    budget: budget.BudgetLimits
    breaker: breaker.BreakerSettings
    rate: rate_limit.RateSettings
    inflight: inflight.InflightSettings = inflight.InflightSettings()

    @classmethod
    def from_settings(cls, settings: LLMSettings, prices: PriceTable | None = None) -> GuardSettings:
        # A running row or a half-open probe outliving every request its call may make is a crashed worker's.
        longest_call_s = settings.request_timeout_seconds * MAX_REQUESTS_PER_ANSWER
        prices = prices or settings.price_table()
        reserve = settings.budget_reserve_tokens
        return cls(
            budget=budget.BudgetLimits(
                daily_limit=settings.daily_token_limit,
                monthly_limit=settings.monthly_token_limit,
                reserve_tokens=reserve,
                reservation_ttl_s=max(900.0, longest_call_s * 1.5),
                timezone=settings.budget_timezone,
                daily_cost_limit_cny=settings.daily_cost_limit_cny,
                monthly_cost_limit_cny=settings.monthly_cost_limit_cny,
                # The model is not known before the answer: the reservation is priced at the
                # fallback (dearest) price, three quarters input, as the apps' calls are.
                reserve_cost_cny=prices.cost(None, reserve * 3 // 4, reserve - reserve * 3 // 4),
            ),
            breaker=breaker.BreakerSettings(
                failure_threshold=settings.breaker_failure_threshold,
                cooldown_s=settings.breaker_cooldown_seconds,
                probe_timeout_s=longest_call_s + 60,
            ),
            rate=rate_limit.RateSettings(
                per_minute=settings.rate_per_minute,
                burst=settings.rate_burst,
                max_wait_s=settings.rate_max_wait_seconds,
            ),
            inflight=inflight.InflightSettings(
                start=settings.inflight_start,
                floor=settings.inflight_floor,
                ceiling=settings.inflight_ceiling,
                decrease_factor=settings.inflight_decrease_factor,
                max_wait_s=settings.inflight_max_wait_seconds,
                lease_ttl_s=max(900.0, longest_call_s * 1.5),
            ),
        )


class Guards:
    """Admits calls and learns their outcomes; thread-safe (each step takes its own connection)."""

    def __init__(self, connect: Connect, settings: GuardSettings, *, sleep: Callable[[float], None] = time.sleep):
        self._connect = connect
        self.settings = settings
        self._sleep = sleep
        self.inflight = inflight.InflightCap(connect, settings.inflight)
        self._leases: dict[int, int] = {}  # running ledger id -> its in-flight lease
        self._given_back: set[int] = set()  # calls backing off after a throttle, their slot returned
        self._leases_lock = threading.Lock()

    def budget(self) -> budget.BudgetStatus:
        with self._connect() as conn:
            return budget.budget_status(conn, self.settings.budget)

    def admit(self, record: CallRecord) -> int:
        """Run the guards in order; returns the call's ``running`` ledger id, or raises ``GuardRefused``."""
        app = record.app_name
        with self._connect() as conn:
            # The breaker is the app's primary route's: a fallback call neither checks nor moves it.
            decision = (
                breaker.BreakerDecision(True, "fallback")
                if record.fallback_for
                else breaker.breaker_check(conn, app, self.settings.breaker)
            )
            if not decision.allowed:
                message = f"circuit breaker for {app} is {decision.state}; retry in {decision.retry_after_s or 0:.0f} s"
                refusal = record_refusal(conn, record, "circuit_open", message)
                raise CircuitOpen(message, app_name=app, retry_after_s=decision.retry_after_s, ledger_id=refusal)
        try:
            self._take_rate_token(record)
            lease = self._take_slot(record)
            try:
                with self._connect() as conn:
                    ledger_id, status = budget.admit_call(
                        conn, record, self.settings.budget, concurrent_admissions=self.settings.inflight.ceiling
                    )
            except BaseException:
                self.inflight.release(lease, "other")
                raise
            if not status.allowed:
                self.inflight.release(lease, "other")
                raise BudgetExceeded(f"token budget exhausted: {status.reason}", app_name=app, ledger_id=ledger_id)
            with self._leases_lock:
                self._leases[ledger_id] = lease
            return ledger_id
        except (RateLimited, BudgetExceeded):
            if decision.probe:
                with self._connect() as conn:
                    breaker.breaker_release_probe(conn, app)
            raise

    def _take_rate_token(self, record: CallRecord) -> None:
        rate, app = self.settings.rate, record.app_name
        waited = 0.0
        while True:
            with self._connect() as conn:
                wait = rate_limit.rate_try_acquire(conn, app, rate)
            if wait <= 0:
                return
            if waited + wait > rate.max_wait_s:
                message = (
                    f"rate limit for {app} ({rate.per_minute:g}/min, burst {rate.burst}) "
                    f"still exhausted after waiting {waited:.1f} s"
                )
                with self._connect() as conn:
                    refusal = record_refusal(conn, record, "rate_limited", message)
                raise RateLimited(message, app_name=app, retry_after_s=wait, ledger_id=refusal)
            self._sleep(wait)
            waited += wait

    def _take_slot(self, record: CallRecord) -> int:
        lease = self.inflight.acquire()
        if lease is not None:
            return lease
        snapshot = self.inflight.snapshot()
        message = (
            f"LLM calls in flight at the cap ({snapshot.slots}, {snapshot.held} held) "
            f"for {self.settings.inflight.max_wait_s:g} s; not sending"
        )
        with self._connect() as conn:
            refusal = record_refusal(conn, record, "rate_limited", message)
        raise RateLimited(message, app_name=record.app_name, retry_after_s=1.0, ledger_id=refusal)

    def attempt_throttled(self, ledger_id: int) -> None:
        """A throttling answer to a call that will retry: its slot goes back while it backs off
        (the cap may be cut) and ``resume`` waits for one under the new cap before the retry, so
        retries cannot keep the provider over its limit."""
        with self._leases_lock:
            lease = self._leases.pop(ledger_id, None)
            if lease is not None:
                self._given_back.add(ledger_id)
        if lease is not None:
            self._release(ledger_id, lease, "throttled")

    def resume(self, ledger_id: int) -> None:
        """Before an attempt: a call that gave its slot back takes one again (no slot within the
        wait: the retry goes without one, its call has begun)."""
        with self._leases_lock:
            if ledger_id not in self._given_back:
                return
            self._given_back.discard(ledger_id)
        again = self.inflight.acquire()
        if again is not None:
            with self._leases_lock:
                self._leases[ledger_id] = again

    def call_ended(self, ledger_id: int, outcome: inflight.Outcome) -> None:
        """The call is booked: its slot is free; a success may grow the cap, a throttle cut it."""
        with self._leases_lock:
            lease = self._leases.pop(ledger_id, None)
            self._given_back.discard(ledger_id)
        if lease is not None:
            self._release(ledger_id, lease, outcome)

    def _release(self, ledger_id: int, lease: int, outcome: inflight.Outcome) -> None:
        """Give a slot back. With the database away (a restart just after the call was booked) the
        call still succeeds or fails on its own merits: its answer is kept, and the lease stops
        counting at its expiry instead (``lease_ttl_s``)."""
        try:
            self.inflight.release(lease, outcome)
        except psycopg.OperationalError as exc:
            logger.warning(
                "the in-flight slot of call %s was not given back (database away: %s); its lease expires in %g s",
                ledger_id,
                exc,
                self.settings.inflight.lease_ttl_s,
            )

    def call_succeeded(self, conn: DictConnection, app_name: str) -> None:
        breaker.breaker_success(conn, app_name)

    def call_failed(self, conn: DictConnection, app_name: str, error_code: str | None) -> str:
        """Count one failed call (however many attempts it made); returns the breaker's state."""
        return breaker.breaker_failure(conn, app_name, self.settings.breaker, error_code)
