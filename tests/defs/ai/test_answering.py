"""iter_answers: at most ``concurrency`` calls in flight, each answer cached the moment it validates."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from tests.defs.ai.conftest import cache_rows
from zqyy_assets.core import answering, db
from zqyy_assets.core.answering import Ask, RunInfo
from zqyy_assets.core.llm.correction import REASK_MARK
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


def test_an_answer_outside_its_schema_is_re_asked_with_each_field_and_message(db_url, make_llm, fake) -> None:
    wrong = {"clues": [{"category": "", "summary": "常客"}, {"emoji": "🙂"}]}
    fake.script("app3_clue", [{"answer": wrong}, "ok"], tokens=(300, 40))
    [outcome] = answering.iter_answers(make_llm(), db_url, _asks(1), _run(), concurrency=1)

    assert (outcome.status, outcome.calls, outcome.invalid_answers) == ("answered", 2, 1)
    assert (outcome.tokens_in, outcome.tokens_out) == (600, 80)  # the re-ask's tokens too
    first, second = fake.requests("app3_clue")
    assert REASK_MARK not in first["prompt"]
    # The re-ask carries every field that was wrong and why, in the wrong answer's session.
    assert second["prompt"].startswith(REASK_MARK) and second["session_id"] == first_session(db_url)
    for problem in (
        "clues.0.category: String should have at least 1 character",
        "clues.1.category: Field required",
        "clues.1.summary: Field required",
    ):
        assert f"- {problem}" in second["prompt"].splitlines()
    assert outcome.answer is not None and outcome.answer.result_json["clues"] != wrong["clues"]
    with db.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT status, error_code, error_message, request_prompt, tokens_used FROM biz.ai_call_ledger ORDER BY id"
        ).fetchall()
    assert [(r["status"], r["error_code"]) for r in rows] == [("failed", "InvalidAnswer"), ("success", None)]
    assert rows[0]["error_message"].startswith("clues.0.category: ") and "clues.1.summary" in rows[0]["error_message"]
    assert REASK_MARK not in rows[0]["request_prompt"] and REASK_MARK in rows[1]["request_prompt"]
    assert rows[1]["tokens_used"] == 340


def first_session(db_url: str) -> str:
    with db.connect(db_url) as conn:
        row = conn.execute("SELECT session_id FROM biz.ai_call_ledger ORDER BY id LIMIT 1").fetchone()
    assert row is not None and row["session_id"]
    return str(row["session_id"])


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


def _memo_hits(db_url: str) -> list[dict]:
    with db.connect(db_url) as conn:
        return conn.execute("SELECT * FROM biz.ai_memo_hits ORDER BY id").fetchall()


def test_a_memo_hit_books_what_it_saved_from_the_apps_recent_calls(db_url, make_llm, fake, spans) -> None:
    fake.script("app3_clue", tokens=(1000, 200), model="qwen-max")
    llm = make_llm()
    first = list(answering.iter_answers(llm, db_url, _asks(2), _run(), concurrency=1, prices=llm.price_table))
    assert [o.status for o in first] == ["answered", "answered"]
    call_cost = first[0].cost_cny
    assert call_cost == llm.price_table.cost("qwen-max", 1000, 200) > 0
    spans.clear()

    run = _run()
    hits = list(answering.iter_answers(llm, db_url, _asks(2), run, concurrency=1, prices=llm.price_table))

    assert [(o.status, o.tokens_avoided, o.cost_avoided_cny) for o in hits] == [("hit", 1200, call_cost)] * 2
    rows = _memo_hits(db_url)
    assert [
        (r["target_id"], r["tokens_in_avoided"], r["tokens_out_avoided"], float(r["cost_avoided_cny"])) for r in rows
    ] == [
        ("0", 1000, 200, call_cost),
        ("1", 1000, 200, call_cost),
    ]
    assert [r["cache_id"] for r in rows] == [o.answer.id for o in hits]
    assert {(r["dagster_run_id"], r["trigger_type"]) for r in rows} == {(run.dagster_run_id, "manual")}
    summary = answering.summarise(hits)
    assert (summary["cache_hits"], summary["memo_tokens_avoided"], summary["memo_cost_avoided_cny"]) == (
        2,
        2400,
        round(2 * call_cost, 6),
    )
    assert summary["cost_cny"] == 0.0 and fake.count("app3_clue") == 2
    # Each hit is a span of its own: the answer memoization gave, in the run's trace.
    traced = spans.get_finished_spans()
    assert [(s.name, s.attributes["zqyy.memo_hit"], s.attributes["zqyy.target_id"]) for s in traced] == [
        ("invoke_agent app3_clue", True, "0"),
        ("invoke_agent app3_clue", True, "1"),
    ]
    assert traced[0].attributes["zqyy.input_hash"] == hits[0].answer.input_hash
    assert traced[0].attributes["zqyy.partition_key"] == "1-0"
    assert traced[0].attributes["zqyy.cost_avoided_cny"] == call_cost


def test_a_call_is_traced_with_its_input_hash_and_cost(db_url, make_llm, fake, spans) -> None:
    fake.script("app3_clue", tokens=(1000, 200))
    [outcome] = answering.iter_answers(make_llm(), db_url, _asks(1), _run(), concurrency=1)
    [span] = spans.get_finished_spans()
    assert span.attributes["zqyy.memo_hit"] is False
    assert span.attributes["zqyy.input_hash"] == outcome.answer.input_hash
    assert span.attributes["zqyy.cost_cny"] == outcome.cost_cny > 0


def test_without_recent_calls_a_hit_is_priced_from_its_cached_answer(db_url, make_llm, fake) -> None:
    fake.script("app3_clue", tokens=(1000, 200), model="qwen-max")
    llm = make_llm()
    list(answering.iter_answers(llm, db_url, _asks(1), _run(), concurrency=1, prices=llm.price_table))
    with db.connect(db_url) as conn:
        conn.execute("DELETE FROM biz.ai_call_ledger")  # the calls are older than the ledger remembers
    [hit] = answering.iter_answers(llm, db_url, _asks(1), _run(), concurrency=1, prices=llm.price_table)
    assert (hit.tokens_avoided, hit.cost_avoided_cny) == (1200, llm.price_table.cost("qwen-max", 1000, 200))


def test_offline_hits_save_nothing_but_are_counted(db_url, make_llm) -> None:
    llm = make_llm(provider="offline")
    offline_run = RunInfo(provider="offline", trigger="manual", force=False, dagster_run_id=None)
    list(answering.iter_answers(llm, db_url, _asks(1), offline_run, concurrency=1))
    [hit] = answering.iter_answers(llm, db_url, _asks(1), offline_run, concurrency=1)
    assert (hit.status, hit.tokens_avoided, hit.cost_avoided_cny) == ("hit", 0, 0.0)
    [row] = _memo_hits(db_url)
    assert (row["tokens_in_avoided"], float(row["cost_avoided_cny"]), row["dagster_run_id"]) == (0, 0.0, None)
