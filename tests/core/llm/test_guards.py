"""The Postgres guards through the real SDK and fake server: budget, circuit breaker, rate limit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.core.llm.conftest import FAST, ledger
from zqyy_assets.core import db
from zqyy_assets.core.llm import breaker, budget
from zqyy_assets.core.llm import ledger as ledger_rows
from zqyy_assets.core.llm.errors import (
    BudgetExceeded,
    CircuitOpen,
    GuardRefused,
    RateLimited,
    TransientLLMError,
)
from zqyy_assets.core.llm.guards import Guards, GuardSettings
from zqyy_assets.core.llm.ledger import CallRecord

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def _cool_down(db_url: str, app: str) -> None:
    """Move the breaker's opening an hour back: its cool-down is over without waiting for it."""
    with db.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE biz.ai_circuit_breaker SET opened_at = opened_at - interval '1 hour' WHERE app_name = %s", (app,)
        )


def _breaker_row(db_url: str, app: str) -> dict:
    with db.connect(db_url) as conn:
        return conn.execute("SELECT * FROM biz.ai_circuit_breaker WHERE app_name = %s", (app,)).fetchone()


def _bucket_clock(db_url: str, waits: list[float]) -> Callable[[float], None]:
    """The service's sleep, as a clock: a wait ages the rate buckets by that much, at once."""

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        with db.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE biz.ai_rate_bucket SET refilled_at = refilled_at - make_interval(secs => %s)", (seconds,)
            )

    return sleep


def _race(settings: dict, *, processes: int, calls: int, app: str = "app3_clue") -> list[dict]:
    """Racing worker processes released together; every call's outcome, all processes together."""
    job = {"settings": settings, "app": app, "calls": calls}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.core.llm.race_worker", json.dumps(job)],
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outcomes: list[dict] = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            outcomes.extend(json.loads(out.strip().splitlines()[-1]))
        return outcomes
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


# ------------------------------------------------------------------------------------- budget


def test_budget_exhaustion_stops_calls_and_is_recorded(make_service, fake, db_url):
    fake.script("app3_clue", tokens=(400, 200))
    service = make_service(daily_token_limit=1_000, budget_reserve_tokens=600)

    service.call_app("app3_clue", {}, site_id=1)  # 600 used
    service.call_app("app3_clue", {}, site_id=2)  # 600 < 1000: admitted, 1200 used
    with pytest.raises(BudgetExceeded) as caught:
        service.call_app("app3_clue", {}, site_id=3)

    assert caught.value.reason == "budget_exceeded" and "daily" in str(caught.value)
    assert fake.count() == 2
    rows = ledger(db_url)
    assert [r["status"] for r in rows] == ["success", "success", "budget_exceeded"]
    refused = rows[-1]
    assert refused["error_code"] == "budget_exceeded" and "1200 of 1000" in refused["error_message"]
    assert (refused["site_id"], refused["tokens_used"], refused["attempts"]) == (3, 0, 0)
    assert service.budget().as_dict()["daily_used"] == 1200


def test_monthly_budget_counts_too(make_service, fake):
    fake.script("app3_clue", tokens=(400, 200))
    service = make_service(daily_token_limit=10_000, monthly_token_limit=500)
    service.call_app("app3_clue", {}, site_id=1)
    with pytest.raises(BudgetExceeded, match="monthly"):
        service.call_app("app3_clue", {}, site_id=1)


def test_racing_processes_overrun_the_budget_by_at_most_one_call_each(llm_settings, fake, db_url):
    fake.script("app3_clue", tokens=(200, 100), latency_ms=30)
    settings = llm_settings(daily_token_limit=2_000, budget_reserve_tokens=100).model_dump(mode="json")
    settings["api_key"] = FAST["api_key"]  # model_dump masks the secret

    outcomes = _race(settings, processes=2, calls=6)

    used = sum(o["tokens"] for o in outcomes if o["ok"])
    # Each admitted call reserves 100 but costs 300, so racing callers overrun, by one call each at most.
    assert 2_000 <= used <= 2_000 + 2 * 300
    assert any(not o["ok"] and o["reason"] == "budget_exceeded" for o in outcomes)
    rows = ledger(db_url)
    assert sum(r["tokens_used"] for r in rows) == used
    assert sum(r["status"] == "budget_exceeded" for r in rows) == sum(not o["ok"] for o in outcomes)


def test_a_running_call_reserves_budget(db_url):
    limits = budget.BudgetLimits(daily_limit=1_000, reserve_tokens=600)
    record = ledger_rows.CallRecord(
        site_id=1, app_name="app3_clue", app_id="x", provider="dashscope", request_prompt="{}"
    )
    with db.connect(db_url, autocommit=True) as conn:
        first, status = budget.admit_call(conn, record, limits)
        assert status.allowed
        second, status = budget.admit_call(conn, record, limits)  # 600 reserved < 1000
        assert status.allowed
        _, status = budget.admit_call(conn, record, limits)  # 1200 reserved
        assert not status.allowed and status.daily_used == 1_200
        ledger_rows.finish_call(conn, first, status="success", tokens_in=10, tokens_out=10)
        ledger_rows.finish_call(conn, second, status="failed")
        _, status = budget.admit_call(conn, record, limits)  # reservations released: 20 used
        assert status.allowed and status.daily_used == 20


# ----------------------------------------------------------------------------- circuit breaker


def test_breaker_opens_after_consecutive_failures_and_recovers(make_service, fake, db_url):
    fake.script("app7_customer", ["500", "500"])
    service = make_service(max_attempts=1, breaker_failure_threshold=2, breaker_cooldown_seconds=60)

    for _ in range(2):
        with pytest.raises(TransientLLMError):
            service.call_app("app7_customer", {}, site_id=1)
    with pytest.raises(CircuitOpen) as caught:
        service.call_app("app7_customer", {}, site_id=1)
    assert caught.value.reason == "circuit_open" and caught.value.retry_after_s > 0
    assert fake.count() == 2  # the refused call sent nothing
    service.call_app("app3_clue", {}, site_id=1)  # other apps have their own breaker

    _cool_down(db_url, "app7_customer")
    assert service.call_app("app7_customer", {}, site_id=1).attempts == 1  # the half-open probe
    service.call_app("app7_customer", {}, site_id=1)  # closed again
    assert [(r["app_name"], r["status"]) for r in ledger(db_url)] == [
        ("app7_customer", "failed"),
        ("app7_customer", "failed"),
        ("app7_customer", "circuit_open"),
        ("app3_clue", "success"),
        ("app7_customer", "success"),
        ("app7_customer", "success"),
    ]
    row = _breaker_row(db_url, "app7_customer")
    assert row["state"] == "closed" and row["consecutive_failures"] == 0


def test_failed_probe_reopens_the_breaker(make_service, fake, db_url):
    fake.script("app7_customer", ["500", "500"])
    service = make_service(max_attempts=1, breaker_failure_threshold=1, breaker_cooldown_seconds=60)
    with pytest.raises(TransientLLMError):
        service.call_app("app7_customer", {}, site_id=1)
    _cool_down(db_url, "app7_customer")
    with pytest.raises(TransientLLMError):
        service.call_app("app7_customer", {}, site_id=1)  # the probe fails
    with pytest.raises(CircuitOpen):
        service.call_app("app7_customer", {}, site_id=1)  # open again, for a fresh cool-down
    assert fake.count() == 2


def test_half_open_admits_a_single_probe(db_url):
    settings = breaker.BreakerSettings(failure_threshold=1, cooldown_s=0.0)
    with db.connect(db_url, autocommit=True) as conn:
        assert breaker.breaker_check(conn, "app3_clue", settings).allowed
        breaker.breaker_failure(conn, "app3_clue", settings, "InternalError")
        first = breaker.breaker_check(conn, "app3_clue", settings)
        second = breaker.breaker_check(conn, "app3_clue", settings)
        assert first.allowed and first.probe and not second.allowed and second.state == "half_open"
        breaker.breaker_release_probe(conn, "app3_clue")  # a probe a later guard refused
        assert breaker.breaker_check(conn, "app3_clue", settings).probe


# ---------------------------------------------------------------------------------- rate limit


def test_rate_limit_holds_across_two_processes(llm_settings, fake, db_url):
    # A bucket of 3 that refills once in 100 s: two processes asking 4 times each get 3 in all.
    settings = llm_settings(rate_burst=3, rate_per_minute=0.6, rate_max_wait_seconds=0).model_dump(mode="json")
    settings["api_key"] = FAST["api_key"]

    outcomes = _race(settings, processes=2, calls=4)

    assert sum(o["ok"] for o in outcomes) == 3
    assert {o["reason"] for o in outcomes if not o["ok"]} == {"rate_limited"}
    assert fake.count() == 3
    statuses = [r["status"] for r in ledger(db_url)]
    assert statuses.count("success") == 3 and statuses.count("rate_limited") == 5


def test_rate_limit_waits_for_a_token_when_allowed(make_service, fake, db_url):
    waits: list[float] = []
    # One token every 6 s: without the waits the second call would be refused.
    service = make_service(
        sleep=_bucket_clock(db_url, waits), rate_burst=1, rate_per_minute=10, rate_max_wait_seconds=8
    )
    started = time.monotonic()
    for _ in range(3):
        service.call_app("app3_clue", {}, site_id=1)
    # One wait per token, each for what was left of the 6 s refill: never more, and short of it by
    # no more than the real time the calls took (their wall clock ages the bucket too).
    elapsed = time.monotonic() - started
    assert len(waits) == 2 and all(6.0 - elapsed <= w <= 6.0 for w in waits), (waits, elapsed)
    assert fake.count() == 3


def test_rate_limit_is_per_app_and_threads_share_it(make_service, fake):
    service = make_service(rate_burst=4, rate_per_minute=0.6, rate_max_wait_seconds=0)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: _outcome(service, "app3_clue"), range(8)))
    assert results.count("ok") == 4 and results.count("rate_limited") == 4
    assert _outcome(service, "app6_note") == "ok"


def _outcome(service, app: str) -> str:
    try:
        service.call_app(app, {}, site_id=1)
        return "ok"
    except GuardRefused as refused:
        return refused.reason


def test_guards_run_in_order_breaker_rate_budget(make_service, fake, db_url):
    fake.script("app3_clue", ["invalid_json"], tokens=(600, 600))  # fails, yet costs 1200 tokens
    service = make_service(
        max_attempts=1,
        breaker_failure_threshold=1,
        breaker_cooldown_seconds=60,
        daily_token_limit=1,
        rate_burst=1,
        rate_per_minute=0.6,
        rate_max_wait_seconds=0,
    )
    with pytest.raises(TransientLLMError):
        service.call_app("app3_clue", {}, site_id=1)  # opens the breaker, spends the token and the budget
    with pytest.raises(CircuitOpen):
        service.call_app("app3_clue", {}, site_id=1)
    _cool_down(db_url, "app3_clue")
    with pytest.raises(RateLimited):
        service.call_app("app3_clue", {}, site_id=1)  # the probe is allowed, the bucket is empty
    service_b = make_service(daily_token_limit=1)  # a fresh bucket is not enough: the budget is spent
    with pytest.raises(BudgetExceeded):
        service_b.call_app("app6_note", {}, site_id=1)
    assert [r["status"] for r in ledger(db_url)] == ["failed", "circuit_open", "rate_limited", "budget_exceeded"]
    assert fake.count() == 1


def test_a_slot_that_cannot_be_given_back_does_not_fail_the_booked_call(llm_settings, db_url, caplog) -> None:
    """The database goes away between a call's booking and the return of its slot: the call ends
    normally (its answer is kept), the slot's lease is left to expire, and a warning says so."""
    database = {"url": db_url}
    guards = Guards(lambda: db.connect(database["url"], autocommit=True), GuardSettings.from_settings(llm_settings()))
    record = CallRecord(site_id=1, app_name="app3_clue", app_id="fake-app3", provider="dashscope", request_prompt="{}")
    ledger_id = guards.admit(record)
    assert guards.inflight.snapshot().held == 1

    database["url"] = "postgresql://postgres@127.0.0.1:9/away?connect_timeout=2"  # nothing listens there
    guards.call_ended(ledger_id, "success")  # does not raise

    database["url"] = db_url
    assert "was not given back (database away" in caplog.text
    assert guards.inflight.snapshot().held == 1  # until the lease expires (lease_ttl_s)
