"""The shared cap on LLM calls in flight (``core/llm/inflight.py``): one limit across threads and
processes, AIMD against the fake's provider limit, leases of a crashed holder expiring."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import ValidationError

from tests.core.llm.conftest import FAST, ledger
from tests.core.llm.test_guards import _race
from zqyy_assets.core import db
from zqyy_assets.core.llm.errors import RateLimited, TransientLLMError
from zqyy_assets.core.llm.inflight import InflightCap, InflightSettings
from zqyy_assets.core.llm.settings import LLMSettings
from zqyy_assets.testing.fake_dashscope import FakeDashScope
from zqyy_assets.testing.fake_dashscope.quota import ProviderQuota


def _cap(db_url: str, **settings: float) -> InflightCap:
    return InflightCap(lambda: db.connect(db_url, autocommit=True), InflightSettings(**settings))  # type: ignore[arg-type]


def _leases(db_url: str) -> int:
    with db.connect(db_url) as conn:
        return conn.execute("SELECT count(*) AS n FROM biz.ai_inflight_lease").fetchone()["n"]


@pytest.fixture
def counting_fake(db_url: str):
    """A fake whose quota is far above anything here: it only counts the peak in flight."""
    with FakeDashScope(latency_ms=150, qps=100_000) as server:
        yield server


def test_threads_never_exceed_the_cap_and_every_slot_is_returned(llm_settings, counting_fake, db_url):
    from zqyy_assets.core.llm.service import LLMService

    settings = llm_settings(base_url=counting_fake.base_url, inflight_start=3, inflight_ceiling=3)
    with LLMService(settings) as service, ThreadPoolExecutor(9) as pool:
        answers = list(pool.map(lambda i: service.call_app("app3_clue", {"n": i}, site_id=1), range(9)))

    assert len(answers) == 9
    assert counting_fake.quota is not None and 2 <= counting_fake.quota.peak_in_flight <= 3
    assert _leases(db_url) == 0


def test_processes_share_one_cap(llm_settings, counting_fake, db_url):
    settings = llm_settings(base_url=counting_fake.base_url, inflight_start=2, inflight_ceiling=2)
    dumped = settings.model_dump(mode="json")
    dumped["api_key"] = FAST["api_key"]  # model_dump masks the secret

    outcomes = _race(dumped, processes=3, calls=3)

    assert all(o["ok"] for o in outcomes) and len(outcomes) == 9
    assert counting_fake.quota is not None and 1 <= counting_fake.quota.peak_in_flight <= 2
    assert _leases(db_url) == 0


def test_a_throttling_answer_cuts_the_cap_and_it_shows(make_service, fake, db_url, caplog):
    fake.script("app3_clue", ["429", "ok"])
    service = make_service(inflight_start=10, inflight_decrease_factor=0.5)

    with caplog.at_level("WARNING", logger="zqyy_assets.core.llm.inflight"):
        service.call_app("app3_clue", {}, site_id=1)

    snapshot = service.guards.inflight.snapshot()
    assert (snapshot.cap, snapshot.cuts, snapshot.throttles, snapshot.held) == (5.0, 1, 1, 0)
    assert "in-flight cap cut from 10 to 5" in caplog.text
    assert [r["status"] for r in ledger(db_url)] == ["success"]


def test_one_overshoot_cuts_once_and_the_floor_holds(db_url):
    cap = _cap(db_url, start=10, floor=4, ceiling=10, decrease_factor=0.5)
    before = [cap.try_acquire() for _ in range(3)]
    assert None not in before
    for lease in before:  # three 429s from calls sent under the same cap: one congestion event
        cap.release(lease, "throttled")  # type: ignore[arg-type]
    assert (cap.snapshot().cap, cap.snapshot().cuts, cap.snapshot().throttles) == (5.0, 1, 3)

    after = cap.try_acquire()  # sent under the cut cap, throttled again: a second event
    assert after is not None
    cap.release(after, "throttled")
    assert (cap.snapshot().cap, cap.snapshot().cuts) == (4.0, 2)  # 2.5, held at the floor


def test_successes_grow_the_cap_only_while_it_limits(db_url):
    cap = _cap(db_url, start=2, floor=1, ceiling=4, decrease_factor=0.5)
    one = cap.try_acquire()
    assert one is not None
    cap.release(one, "success")  # one of two slots used: the cap was not what limited
    assert cap.snapshot().cap == 2.0

    a, b = cap.try_acquire(), cap.try_acquire()
    assert a is not None and b is not None and cap.try_acquire() is None  # full at 2
    cap.release(a, "success")  # slow start: +1
    assert cap.snapshot().cap == 3.0

    c, d = cap.try_acquire(), cap.try_acquire()
    assert c is not None and d is not None  # b, c, d: full at 3
    cap.release(b, "throttled")  # b was taken before any cut: cuts to 1.5, slow start over
    assert cap.snapshot().cap == 1.5
    e = cap.try_acquire()
    assert e is None  # two held, one slot
    cap.release(c, "success")  # held 2 >= 1: grows by 1 / cap
    assert cap.snapshot().cap == pytest.approx(1.5 + 1 / 1.5)
    cap.release(d, "success")
    assert cap.snapshot().held == 0


def test_a_crashed_holders_lease_expires(db_url):
    crashed = _cap(db_url, start=1, ceiling=1, lease_ttl_s=60)
    assert crashed.try_acquire() is not None  # never released: its process died
    survivor = _cap(db_url, start=1, ceiling=1, max_wait_s=0.05)
    assert survivor.acquire() is None

    with db.connect(db_url, autocommit=True) as conn:  # a minute passes
        conn.execute("UPDATE biz.ai_inflight_lease SET expires_at = expires_at - interval '61 seconds'")
    assert survivor.try_acquire() is not None
    assert _leases(db_url) == 1


def test_no_slot_within_the_wait_is_a_refusal_in_the_ledger(make_service, fake, db_url):
    service = make_service(inflight_start=1, inflight_ceiling=1, inflight_max_wait_seconds=0.2)
    held = service.guards.inflight.try_acquire()
    assert held is not None

    with pytest.raises(RateLimited, match="in flight at the cap"):
        service.call_app("app3_clue", {}, site_id=1)

    assert fake.count() == 0
    assert [(r["status"], r["error_code"]) for r in ledger(db_url)] == [("rate_limited", "rate_limited")]


def test_aimd_settles_under_the_providers_limit(llm_settings, db_url):
    # 10 requests a second at 100 ms each: 1 call in flight is the limit; the cap starts at 8.
    with FakeDashScope(latency_ms=100, qps=10) as limited:
        settings = llm_settings(
            base_url=limited.base_url,
            inflight_start=8,
            inflight_ceiling=8,
            inflight_decrease_factor=0.5,
            max_attempts=4,
            # A throttled call's retries span more than the fake's one-second window, so one of them
            # lands in a second with room (at 0.05-0.2 s, four could all fall in one full second).
            retry_base_delay_seconds=0.3,
            retry_max_delay_seconds=1.0,
            throttle_delay_factor=2,
        )
        from zqyy_assets.core.llm.service import LLMService

        def ask(i: int) -> str:
            try:
                service.call_app("app3_clue", {"n": i}, site_id=1)
            except TransientLLMError as error:  # throttled on every one of its attempts
                return error.code or ""
            return "answered"

        with LLMService(settings) as service, ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(ask, range(40)))
            snapshot = service.guards.inflight.snapshot()
        quota = limited.quota
        assert quota is not None

    assert quota.throttled > 0 and snapshot.cuts >= 1 and math.floor(snapshot.cap) < 8
    assert quota.peak_in_flight <= 8
    # The cut leaves room: nearly every call is answered, each by exactly one admitted request. (A
    # call throttled on all four attempts, in seconds another thread filled, can happen on a loaded
    # machine; it is a throttle, never anything else.)
    answered = outcomes.count("answered")
    assert answered >= 32 and quota.admitted == answered, outcomes
    assert set(outcomes) <= {"answered", "Throttling.RateQuota"}, outcomes


def test_a_cap_setting_of_zero_or_below_is_refused_by_name(monkeypatch):
    for name in ("inflight_start", "inflight_floor", "inflight_ceiling"):
        with pytest.raises(ValidationError, match=f"ZQYY_LLM_{name.upper()} must be at least 1, got 0"):
            LLMSettings(**{name: 0})
    monkeypatch.setenv("ZQYY_LLM_INFLIGHT_CEILING", "-3")
    with pytest.raises(ValidationError, match="ZQYY_LLM_INFLIGHT_CEILING must be at least 1, got -3"):
        LLMSettings()
    monkeypatch.setenv("ZQYY_LLM_INFLIGHT_CEILING", "2")
    with pytest.raises(ValidationError, match="ZQYY_LLM_INFLIGHT_FLOOR \\(3\\) must not exceed"):
        LLMSettings(inflight_floor=3)


def test_the_fakes_provider_limit_counts_per_second():
    now = [100.2]
    quota = ProviderQuota(2, clock=lambda: now[0])
    assert [quota.admit(), quota.admit(), quota.admit()] == [True, True, False]
    now[0] = 101.0
    assert quota.admit()
    assert quota.stats() == {"qps": 2, "admitted": 3, "throttled": 1, "peak_in_flight": 3}


def test_a_throttled_call_backs_off_without_its_slot(make_service, fake, db_url):
    fake.script("app3_clue", ["429", "ok"])
    held_while_backing_off: list[int] = []
    service = make_service(sleep=lambda seconds: held_while_backing_off.append(_leases(db_url)))

    service.call_app("app3_clue", {}, site_id=1)

    assert held_while_backing_off == [0] and fake.count("app3_clue") == 2 and _leases(db_url) == 0
