"""call_app with the real dashscope SDK against the fake server: answers, tokens and every error class."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import psycopg
import pytest

from tests.core.llm.conftest import ledger
from tests.databases import allow_connections
from zqyy_assets.core.answer_schemas import validate_answer
from zqyy_assets.core.llm.errors import PermanentLLMError, TransientLLMError
from zqyy_assets.core.llm.settings import MAX_REQUESTS_PER_ANSWER
from zqyy_assets.testing.fake_dashscope import FakeDashScope

FINANCE_PROMPT = {
    "site": {"site_id": 7, "name": "星辰台球"},
    "time_dimension": "this_month",
    "area": "all",
    "period": {
        "start": "2026-11-01",
        "end": "2026-11-22",
        "metrics": {"revenue": 52000, "table_fee": 30000, "assistant_fee": 12000, "goods_amount": 10000},
    },
    "comparison": {
        "start": "2026-10-01",
        "end": "2026-10-22",
        "metrics": {"revenue": 48000, "table_fee": 31000, "assistant_fee": 8000, "goods_amount": 9000},
    },
}


def test_answer_is_parsed_validated_and_booked(make_service, fake, db_url):
    fake.script("app2_finance", tokens=(1200, 340))
    service = make_service()

    answer = service.call_app(
        "app2_finance",
        FINANCE_PROMPT,
        site_id=7,
        target_id="this_month__all",
        dagster_run_id="run-a",
        trigger_type="dws_completed",
    )

    validate_answer("app2_finance", answer.payload)
    assert answer.payload["insights"][0]["metric"] == "revenue"
    assert (answer.tokens_in, answer.tokens_out, answer.attempts) == (1200, 340, 1)
    assert answer.provider == "dashscope" and answer.model == "qwen-plus" and answer.session_id
    assert answer.prompt_version == "2026-11-22.1"
    [received] = fake.requests("app2_finance")
    assert received["app_id"] == "fake-app2_finance" and received["has_bearer"] and not received["stream"]
    assert '"revenue": 52000' in received["prompt"]
    [row] = ledger(db_url)
    assert row["status"] == "success" and row["id"] == answer.ledger_id
    assert (row["tokens_in"], row["tokens_out"], row["tokens_used"], row["tokens_reserved"]) == (1200, 340, 1540, 0)
    assert (row["site_id"], row["target_id"], row["dagster_run_id"], row["trigger_type"]) == (
        7,
        "this_month__all",
        "run-a",
        "dws_completed",
    )
    assert row["request_id"] == received["request_id"] and row["session_id"] == answer.session_id
    assert row["finished_at"] is not None and row["response_text"].startswith('{"insights"')


@pytest.mark.parametrize(
    ("shape", "expected"),
    [("models", (900, 100)), ("flat", (900, 100)), ("total", (1000, 0))],
)
def test_tokens_from_every_usage_shape(make_service, fake, shape, expected):
    fake.script("app3_clue", tokens=(900, 100), usage_shape=shape)
    answer = make_service().call_app("app3_clue", {"recency_days": 3}, site_id=1, target_id="42")
    assert (answer.tokens_in, answer.tokens_out) == expected


def test_bare_list_is_wrapped_as_insights(make_service, fake):
    fake.script("app2a_finance_area", ["bare_list"])
    answer = make_service().call_app("app2a_finance_area", {**FINANCE_PROMPT, "area": "vip"}, site_id=1)
    assert set(answer.payload) == {"insights"}
    validate_answer("app2a_finance_area", answer.payload)


def test_session_and_biz_params_reach_the_service(make_service, fake):
    answer = make_service(workspace="ws-1").call_app(
        "app6_note", {"note_content": "喜欢周末来打斯诺克"}, site_id=1, session_id="sess-1", biz_params={"User_ID": "9"}
    )
    [received] = fake.requests()
    assert received["session_id"] == "sess-1" and answer.session_id == "sess-1"
    assert received["biz_params"] == {"User_ID": "9"} and received["workspace"] == "ws-1"


def test_throttling_then_success_retries_and_waits_longer(make_service, fake, db_url):
    waits: list[float] = []
    fake.script("app3_clue", ["429", "500", "ok"])
    answer = make_service(sleep=waits.append, max_attempts=3).call_app("app3_clue", {}, site_id=1)

    assert answer.attempts == 3 and fake.count("app3_clue") == 3
    # base 0.01 s: the throttled first retry waits 4x the base (0.02-0.04 s, jittered),
    # the 5xx second retry waits 2x the base (0.01-0.02 s).
    assert 0.02 <= waits[0] <= 0.04 and 0.01 <= waits[1] <= 0.02
    [row] = ledger(db_url)
    assert row["status"] == "success" and row["attempts"] == 3


def test_three_5xx_exhaust_the_attempts(make_service, fake, db_url):
    fake.script("app3_clue", ["500", "500", "500", "ok"])
    with pytest.raises(TransientLLMError) as caught:
        make_service(max_attempts=3).call_app("app3_clue", {}, site_id=1)
    assert caught.value.code == "InternalError" and caught.value.attempts == 3
    assert fake.count() == 3
    [row] = ledger(db_url)
    assert (row["status"], row["error_code"], row["attempts"]) == ("failed", "InternalError", 3)


@pytest.mark.parametrize(
    ("step", "code"),
    [
        ("401", "InvalidApiKey"),
        ("400", "InvalidParameter"),
        ("data_inspection", "DataInspectionFailed"),
        ("403", "AccessDenied"),
        ("arrearage", "Arrearage"),
    ],
)
def test_permanent_errors_are_not_retried(make_service, fake, db_url, step, code):
    fake.script("app7_customer", [step, "ok"])
    with pytest.raises(PermanentLLMError) as caught:
        make_service().call_app("app7_customer", {}, site_id=1)
    assert caught.value.code == code and caught.value.attempts == 1
    assert fake.count() == 1
    [row] = ledger(db_url)
    assert (row["status"], row["error_code"]) == ("failed", code) and row["error_message"]


def test_invalid_json_is_retried_and_its_tokens_are_counted(make_service, fake, db_url):
    fake.script("app4_analysis", ["invalid_json", "ok"], tokens=(500, 50))
    answer = make_service().call_app("app4_analysis", {"services": 3}, site_id=1)
    assert answer.attempts == 2 and fake.count() == 2
    assert (answer.tokens_in, answer.tokens_out) == (1000, 100)  # the broken answer was paid for too
    validate_answer("app4_analysis", answer.payload)


def test_invalid_json_every_time_is_transient(make_service, fake, db_url):
    fake.script("app5_tactics", ["invalid_json"] * 3, tokens=(100, 10))
    with pytest.raises(TransientLLMError) as caught:
        make_service(max_attempts=3).call_app("app5_tactics", {}, site_id=1)
    assert caught.value.code == "InvalidJSON"
    [row] = ledger(db_url)
    assert (row["status"], row["tokens_in"], row["tokens_out"]) == ("failed", 300, 30)
    assert row["response_text"] and not row["response_text"].endswith("}")


def test_dropped_connection_is_retried_by_us_not_resent_by_the_sdk(make_service, fake):
    fake.script("app3_clue", ["drop", "ok"])
    answer = make_service().call_app("app3_clue", {}, site_id=1)
    # Had the SDK resent silently, the "ok" would have answered attempt 1.
    assert answer.attempts == 2 and fake.count() == 2


def test_truncated_body_is_retried(make_service, fake):
    fake.script("app3_clue", ["cut"])
    assert make_service().call_app("app3_clue", {}, site_id=1).attempts == 2


def test_time_out_is_retried(make_service, fake):
    fake.script("app3_clue", ["slow:1500", "ok"])
    answer = make_service(request_timeout_seconds=0.3).call_app("app3_clue", {}, site_id=1)
    assert answer.attempts == 2 and fake.count() == 2


def test_step_retries_share_one_request_cap_per_answer(make_service, fake, db_url):
    fake.script("app3_clue", ["500"] * 10)
    service = make_service(max_attempts=3)
    call = dict(site_id=1, target_id="42", dagster_run_id="run-x")

    with pytest.raises(TransientLLMError):
        service.call_app("app3_clue", {}, **call)  # 3 requests
    with pytest.raises(TransientLLMError):
        service.call_app("app3_clue", {}, **call)  # the step retry gets the 4th only
    with pytest.raises(PermanentLLMError) as caught:
        service.call_app("app3_clue", {}, **call)  # nothing left: no request at all
    assert caught.value.code == "RequestCapReached"
    assert fake.count() == MAX_REQUESTS_PER_ANSWER

    # Another answer (another member) in the same run has its own cap.
    fake.reset()
    assert service.call_app("app3_clue", {}, site_id=1, target_id="43", dagster_run_id="run-x").attempts == 1
    statuses = [(r["target_id"], r["status"], r["attempts"]) for r in ledger(db_url)]
    assert statuses == [("42", "failed", 3), ("42", "failed", 1), ("42", "failed", 0), ("43", "success", 1)]


def test_missing_app_id_fails_without_a_request(make_service, fake, db_url, monkeypatch):
    monkeypatch.delenv("DASHSCOPE_APP_ID_APP3_CLUE", raising=False)
    with pytest.raises(PermanentLLMError) as caught:
        make_service(app_ids={"app2_finance": "x"}).call_app("app3_clue", {}, site_id=1)
    assert caught.value.code == "AppIdMissing" and "DASHSCOPE_APP_ID_APP3_CLUE" in caught.value.message
    assert fake.count() == 0
    assert [r["status"] for r in ledger(db_url)] == ["failed"]


def test_concurrent_calls_to_two_servers_never_cross(make_service, fake):
    # The SDK's base URL is a module global; calls pass their own base address instead.
    with FakeDashScope() as other:
        here, there = make_service(), make_service(base_url=other.base_url)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: (here if i % 2 else there).call_app("app3_clue", {}, site_id=i), range(16)))
        assert fake.count() == 8 and other.count() == 8


def test_acall_app_runs_calls_concurrently(make_service, fake, db_url):
    fake.script("app2a_finance_area", latency_ms=400)
    service = make_service()

    async def all_areas() -> list:
        gate = asyncio.Semaphore(8)

        async def one(area: str):
            async with gate:
                return await service.acall_app(
                    "app2a_finance_area", {**FINANCE_PROMPT, "area": area}, site_id=1, target_id=f"this_month__{area}"
                )

        return await asyncio.gather(
            *(one(a) for a in ("hall", "hallA", "hallB", "hallC", "vip", "snooker", "mahjong", "ktv"))
        )

    started = time.monotonic()
    answers = asyncio.run(all_areas())
    assert time.monotonic() - started < 2.0  # one after another would take 3.2 s
    assert len({a.ledger_id for a in answers}) == 8 and fake.count() == 8
    assert all(r["status"] == "success" for r in ledger(db_url))


def test_an_interrupted_call_books_the_requests_sent_and_what_they_cost(make_service, fake, db_url):
    # The run is terminated while the call waits to retry: two requests were sent, the first one's
    # (invalid) answer was paid for; the ledger says so, as the upstream counts them.
    fake.script("app4_analysis", ["invalid_json", "500", "ok"], tokens=(500, 50))
    sleeps = []

    def terminate_on_second_wait(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        make_service(sleep=terminate_on_second_wait, max_attempts=3).call_app("app4_analysis", {}, site_id=1)
    [row] = ledger(db_url)
    assert (row["status"], row["error_code"]) == ("failed", "Interrupted")
    assert row["attempts"] == fake.count() == 2 and (row["tokens_in"], row["tokens_out"]) == (500, 50)


def test_each_request_is_in_the_ledger_before_it_is_sent(make_service, fake, db_url):
    # A process that dies mid-request leaves a running row that counts the requests it sent.
    fake.script("app3_clue", ["500", "slow:1500"])
    service = make_service()
    with ThreadPoolExecutor(1) as pool:
        call = pool.submit(service.call_app, "app3_clue", {}, site_id=1)
        deadline = time.monotonic() + 20
        while fake.count("app3_clue") < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        [in_flight] = ledger(db_url)
        call.result(timeout=30)
    assert (in_flight["status"], in_flight["attempts"]) == ("running", 2)
    assert ledger(db_url)[0]["attempts"] == 2


def test_the_end_of_a_call_is_booked_once_postgres_is_back(make_service, fake, db_url, pg_server_url):
    # Postgres goes away while the request is out (every connection killed, new ones refused) and
    # comes back a moment later: the answer's row is still finished, not left running.
    allow = partial(allow_connections, pg_server_url, db_url)

    fake.script("app3_clue", ["slow:1500"])
    service = make_service()
    try:
        with ThreadPoolExecutor(1) as pool:
            call = pool.submit(service.call_app, "app3_clue", {}, site_id=1)
            deadline = time.monotonic() + 20
            while fake.count("app3_clue") < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            allow(False)
            timer = threading.Timer(2.5, allow, (True,))
            timer.start()
            answer = call.result(timeout=60)
            timer.join()
    finally:
        allow(True)
    [row] = ledger(db_url)
    assert row["status"] == "success" and row["attempts"] == answer.attempts == 1 and row["tokens_in"] > 0


def test_a_request_the_ledger_could_not_count_is_not_sent_nor_booked(make_service, fake, db_url, pg_server_url):
    # Postgres goes away while the call waits to retry: the second request cannot be counted, so it
    # is not sent; the row, booked once Postgres is back, says one request, as the upstream received.
    fake.script("app3_clue", ["500", "ok"])
    allow = partial(allow_connections, pg_server_url, db_url)
    timer = threading.Timer(2.0, allow, (True,))

    def database_goes_away(seconds: float) -> None:
        allow(False)
        timer.start()

    try:
        with pytest.raises(psycopg.OperationalError):
            make_service(sleep=database_goes_away).call_app("app3_clue", {}, site_id=1)
        timer.join()
    finally:
        allow(True)
    [row] = ledger(db_url)
    assert (row["status"], row["error_code"], row["attempts"]) == ("failed", "Interrupted", 1) and fake.count() == 1
