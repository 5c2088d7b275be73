"""iter_answers: at most ``concurrency`` calls in flight, each answer cached the moment it validates."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from tests.defs.ai.conftest import cache_rows
from zqyy_assets.core import answering
from zqyy_assets.core.answering import Ask, RunInfo
from zqyy_assets.core.llm.service import AppAnswer
from zqyy_assets.core.llm.settings import MAX_REQUESTS_PER_ANSWER


class CountingLLM:
    """The real resource, counting the calls in flight at once."""

    def __init__(self, llm: Any) -> None:
        self.llm, self.in_flight, self.most = llm, 0, 0
        self._lock = threading.Lock()

    def call_app(self, app_name: str, prompt: str, **kwargs: Any) -> AppAnswer:
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            return self.llm.call_app(app_name, prompt, **kwargs)
        finally:
            with self._lock:
                self.in_flight -= 1

    def reject_answer(self, answer: AppAnswer, reason: str) -> None:
        self.llm.reject_answer(answer, reason)


def _asks(n: int) -> list[Ask]:
    return [Ask(1, "app3_clue", str(member), {"member": {"member_id": member}}, "test-p1") for member in range(n)]


def _run() -> RunInfo:
    return RunInfo(provider="dashscope", trigger="manual", force=False, dagster_run_id=f"run-{uuid.uuid4().hex}")


def test_calls_are_bounded_by_the_concurrency(db_url, make_llm, fake) -> None:
    fake.script("app3_clue", latency_ms=60)
    llm = CountingLLM(make_llm())
    outcomes = list(answering.iter_answers(llm, db_url, _asks(6), _run(), concurrency=2))
    assert [o.status for o in outcomes] == ["answered"] * 6
    assert llm.most == 2 and fake.count("app3_clue") == 6


def test_an_answer_is_cached_before_the_slow_ones_land(db_url, make_llm, fake) -> None:
    fake.script("app3_clue", ["slow:1500"], latency_ms=50)  # whichever request comes first is slow
    answers = answering.iter_answers(make_llm(), db_url, _asks(2), _run(), concurrency=2)
    first = next(answers)
    assert [r["target_id"] for r in cache_rows(db_url, "app3_clue")] == [first.target_id]  # the slow one: not yet
    second = next(answers)
    assert {first.target_id, second.target_id} == {"0", "1"} and len(cache_rows(db_url, "app3_clue")) == 2


def test_invalid_answers_are_asked_again_within_the_request_cap(db_url, make_llm, fake) -> None:
    # Each answer costs two requests (invalid JSON, then a bare list outside App3's schema):
    # the second re-ask would pass the cap of four, so it is not sent.
    fake.script("app3_clue", ["invalid_json", "bare_list"] * 3)
    [outcome] = answering.iter_answers(make_llm(), db_url, _asks(1), _run(), concurrency=1)
    assert outcome.status == "failed" and outcome.calls == 2 and outcome.invalid_answers == 2
    assert fake.count("app3_clue") == MAX_REQUESTS_PER_ANSWER
    assert "2 answer(s) did not validate" in outcome.reason


def test_references_are_the_codes_never_the_models(db_url, make_llm, fake) -> None:
    fake.script("app3_clue", answer={"clues": [], "_references": {"tables": ["made up"]}})
    ours = {"site_id": 1, "member_id": 0, "tables": [{"table": "ods.settlements", "rows": 2}], "sources": []}
    with_refs = Ask(1, "app3_clue", "0", {"member": {"member_id": 0}}, "test-p1", references=ours)
    without = Ask(1, "app3_clue", "1", {"member": {"member_id": 1}}, "test-p1")
    outcomes = list(answering.iter_answers(make_llm(), db_url, [with_refs, without], _run(), concurrency=1))
    assert [o.status for o in outcomes] == ["answered", "answered"]
    rows = {r["target_id"]: r["result_json"] for r in cache_rows(db_url, "app3_clue")}
    assert rows["0"] == {"clues": [], "_references": ours}
    assert rows["1"] == {"clues": []}  # the model's own references are dropped
    # not part of the memo key: the same prompt with other references is a hit
    again = Ask(1, "app3_clue", "0", with_refs.prompt, "test-p1", references={"other": True})
    [hit] = answering.iter_answers(make_llm(), db_url, [again], _run(), concurrency=1)
    assert hit.status == "hit" and fake.count("app3_clue") == 2
