"""Every call that does not end in success raises an alert of its type, counted per (site, app,
type) while open; a call's answer has one deadline across all its attempts."""

from __future__ import annotations

import time

import pytest

from tests.core.llm.conftest import ledger
from zqyy_assets.core import db, outbox
from zqyy_assets.core.llm.errors import (
    AnswerTimeout,
    AttemptError,
    BudgetExceeded,
    CircuitOpen,
    LLMConfigError,
    RateLimited,
    TransientLLMError,
)
from zqyy_assets.core.llm.retry import RetriesExhausted, Retrying


def alerts(db_url: str) -> list[dict]:
    with db.connect(db_url) as conn:
        return conn.execute("SELECT * FROM biz.ai_alerts ORDER BY id").fetchall()


def pushed(db_url: str, site: int = 1) -> list[outbox.Message]:
    with db.connect(db_url) as conn:
        return [m for m in outbox.read_after(conn, site, 0) if m.type == "alert_created"]


def test_a_failed_call_raises_a_failed_alert_pushed_with_its_log_id(make_service, fake, db_url):
    fake.script("app3_clue", ["500", "500", "500"])
    with pytest.raises(TransientLLMError):
        make_service().call_app("app3_clue", {}, site_id=1, dagster_run_id="run-1")

    [row] = ledger(db_url)
    [alert] = alerts(db_url)
    assert (alert["site_id"], alert["app_type"], alert["alert_type"], alert["alert_status"]) == (
        1,
        "app3_clue",
        "failed",
        "pending",
    )
    assert (alert["occurrences"], alert["ledger_id"], alert["dagster_run_id"]) == (1, row["id"], "run-1")
    assert alert["error_message"].startswith("app3_clue 调用失败:InternalError")
    [message] = pushed(db_url)
    assert message.payload["alert_type"] == "failed" and message.payload["log_id"] == row["id"]
    assert message.payload["alert_id"] == alert["id"]


def test_each_refusal_raises_an_alert_of_its_type(make_service, fake, db_url):
    # circuit_open: one failure opens the breaker, the next call is refused.
    fake.script("app7_customer", ["401"])
    service = make_service(max_attempts=1, breaker_failure_threshold=1)
    with pytest.raises(Exception):  # noqa: B017 (the permanent error itself is tested elsewhere)
        service.call_app("app7_customer", {}, site_id=1)
    with pytest.raises(CircuitOpen):
        service.call_app("app7_customer", {}, site_id=1)
    # rate_limited: a bucket of one, no waiting.
    limited = make_service(rate_burst=1, rate_per_minute=0.01, rate_max_wait_seconds=0)
    limited.call_app("app6_note", {}, site_id=2)
    with pytest.raises(RateLimited):
        limited.call_app("app6_note", {}, site_id=2)
    # budget_exceeded: nothing left today.
    with pytest.raises(BudgetExceeded):
        make_service(daily_token_limit=0).call_app("app4_analysis", {}, site_id=3)

    by_type = {a["alert_type"]: a for a in alerts(db_url)}
    assert set(by_type) == {"failed", "circuit_open", "rate_limited", "budget_exceeded"}
    refusals = {r["status"]: r["id"] for r in ledger(db_url) if r["status"] != "success"}
    for kind in ("circuit_open", "rate_limited", "budget_exceeded"):
        assert by_type[kind]["ledger_id"] == refusals[kind], kind
    assert (by_type["circuit_open"]["app_type"], by_type["circuit_open"]["site_id"]) == ("app7_customer", 1)
    assert (by_type["rate_limited"]["app_type"], by_type["rate_limited"]["site_id"]) == ("app6_note", 2)
    assert (by_type["budget_exceeded"]["app_type"], by_type["budget_exceeded"]["site_id"]) == ("app4_analysis", 3)
    assert "熔断器已打开" in by_type["circuit_open"]["error_message"]


def test_a_call_stopped_before_sending_raises_a_failed_alert(make_service, db_url):
    service = make_service(app_ids={"app3_clue": ""})
    service.settings.app_ids.pop("app3_clue", None)
    with pytest.raises(LLMConfigError):
        service.call_app("app3_clue", {}, site_id=1)
    [alert] = alerts(db_url)
    assert alert["alert_type"] == "failed" and "AppIdMissing" in alert["error_message"]


def test_an_outage_is_one_alert_counting_its_occurrences_and_pushed_once(make_service, fake, db_url):
    fake.script("app3_clue", ["500"] * 5)
    service = make_service(max_attempts=1)
    for _ in range(5):
        with pytest.raises(TransientLLMError):
            service.call_app("app3_clue", {}, site_id=1)

    [alert] = alerts(db_url)
    assert alert["occurrences"] == 5 and alert["last_seen_at"] > alert["created_at"]
    assert alert["ledger_id"] == ledger(db_url)[0]["id"]  # the first occurrence's call
    assert len(pushed(db_url)) == 1  # repeats are counted, not pushed

    # Handled: the alert is closed, the next failure opens (and pushes) a new one.
    with db.transaction(db_url) as conn:
        conn.execute("UPDATE biz.ai_alerts SET alert_status = 'acknowledged' WHERE id = %s", (alert["id"],))
    fake.script("app3_clue", ["500"])
    with pytest.raises(TransientLLMError):
        service.call_app("app3_clue", {}, site_id=1)
    assert [(a["alert_status"], a["occurrences"]) for a in alerts(db_url)] == [("acknowledged", 5), ("pending", 1)]
    assert len(pushed(db_url)) == 2


def test_alerts_of_other_sites_apps_or_types_are_separate(make_service, fake, db_url):
    fake.script("*", ["500"] * 3)
    service = make_service(max_attempts=1)
    for app, site in (("app3_clue", 1), ("app3_clue", 2), ("app6_note", 1)):
        with pytest.raises(TransientLLMError):
            service.call_app(app, {}, site_id=site)
    assert sorted((a["app_type"], a["site_id"], a["occurrences"]) for a in alerts(db_url)) == [
        ("app3_clue", 1, 1),
        ("app3_clue", 2, 1),
        ("app6_note", 1, 1),
    ]


# ------------------------------------------------------------------------------- the deadline


def test_a_slow_answer_is_cut_at_its_deadline_recorded_timeout_and_alerted(make_service, fake, db_url):
    # Each request would take 20 s and a request may take 5 s: without the 1 s deadline the
    # three attempts would take 15 s.
    fake.script("app3_clue", ["slow:20000"] * 3)
    service = make_service(answer_deadline_seconds=1.0, request_timeout_seconds=5.0)
    started = time.monotonic()
    with pytest.raises(AnswerTimeout) as caught:
        service.call_app("app3_clue", {}, site_id=1)
    assert time.monotonic() - started < 4.5
    assert "timeout after 1 attempt(s)" in str(caught.value)  # what a failed step (and its trigger job) says

    [row] = ledger(db_url)
    assert row["status"] == "timeout" and row["attempts"] == 1
    [alert] = alerts(db_url)
    assert (alert["alert_type"], alert["ledger_id"]) == ("timeout", row["id"])
    assert "调用超时" in alert["error_message"]


def test_the_deadline_spans_every_attempt_and_backoff():
    """No attempt starts, and no backoff is slept, past the deadline (an injected clock)."""
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    def fails() -> None:
        now[0] += 4.0  # each attempt takes 4 s
        raise AttemptError("503", kind="transient", app_name="app3_clue", code="ServiceUnavailable")

    retrying = Retrying(max_attempts=4, wait=lambda n, e: 1.0, sleep=sleep, deadline=10.0, clock=lambda: now[0])
    with pytest.raises(RetriesExhausted) as caught:
        retrying.call(fails)

    # 4 s, 1 s backoff, 4 s (t=9): a third attempt could not start before t=10.
    assert caught.value.attempts == 2 and slept == [1.0]
    assert caught.value.timed_out and caught.value.error.code == "DeadlineExceeded"
    assert isinstance(caught.value.as_llm_error(), AnswerTimeout)


def test_the_deadline_is_a_setting_defaulting_to_the_seeds_step_timeout(llm_settings, monkeypatch):
    assert llm_settings().answer_deadline_seconds == 180
    monkeypatch.setenv("ZQYY_LLM_ANSWER_DEADLINE_SECONDS", "42")
    from zqyy_assets.core.llm.settings import LLMSettings

    assert LLMSettings().answer_deadline_seconds == 42
