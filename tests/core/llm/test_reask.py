"""Re-asks through the real SDK against the fake: what the next request carries, and what the ledger books."""

from __future__ import annotations

import json

import pytest

from tests.core.llm.conftest import ledger
from zqyy_assets.core.answer_schemas import validate_answer
from zqyy_assets.core.llm.correction import REASK_MARK, Correction
from zqyy_assets.core.llm.errors import TransientLLMError

PROMPT = {"assistant": {"assistant_id": 3}, "member": {"member_id": 9}, "services": 3}
PROMPT_TEXT = json.dumps(PROMPT, ensure_ascii=False)


def test_an_answer_that_is_not_json_is_re_asked_saying_so_in_its_session(make_service, fake, db_url):
    fake.script("app4_analysis", ["invalid_json", "ok"], tokens=(500, 50))
    answer = make_service().call_app("app4_analysis", PROMPT, site_id=1)

    first, second = fake.requests("app4_analysis")
    assert first["prompt"] == PROMPT_TEXT and first["session_id"] is None
    assert second["prompt"].startswith(REASK_MARK)
    assert "- answer: 不是合法的 JSON 对象（answer is not valid JSON" in second["prompt"]
    assert second["session_id"] == answer.session_id and answer.session_id  # the broken answer's session
    validate_answer("app4_analysis", answer.payload)  # answered from the session's prompt
    assert answer.attempts == 2 and (answer.tokens_in, answer.tokens_out) == (1000, 100)
    [row] = ledger(db_url)
    assert (row["status"], row["attempts"], row["tokens_in"], row["tokens_out"]) == ("success", 2, 1000, 100)
    # The row says it re-asked: the prompt, the broken answer, then what was wrong with it.
    assert row["request_prompt"].startswith(PROMPT_TEXT) and REASK_MARK in row["request_prompt"]


def test_without_a_session_the_re_ask_is_one_prompt_quoting_the_prompt_and_the_answer(make_service, fake):
    fake.script("app4_analysis", [{"kind": "invalid_json", "session": False}, "ok"])
    answer = make_service().call_app("app4_analysis", PROMPT, site_id=1)
    first, second = fake.requests("app4_analysis")
    assert second["session_id"] is None
    prompt = second["prompt"]
    assert prompt.startswith(PROMPT_TEXT) and REASK_MARK in prompt and "不是合法的 JSON" in prompt
    broken = prompt[len(PROMPT_TEXT) : prompt.index(REASK_MARK)]
    assert '{"relationship_level"' in broken  # the answer cut short, quoted back
    validate_answer("app4_analysis", answer.payload)


def test_a_last_answer_that_is_not_json_books_no_re_ask_it_never_sent(make_service, fake, db_url):
    fake.script("app5_tactics", ["invalid_json"] * 2)
    with pytest.raises(TransientLLMError):
        make_service(max_attempts=2).call_app("app5_tactics", PROMPT, site_id=1)
    first, second = fake.requests("app5_tactics")
    assert REASK_MARK not in first["prompt"] and REASK_MARK in second["prompt"]
    [row] = ledger(db_url)
    assert row["attempts"] == 2 and row["request_prompt"].count(REASK_MARK) == 1


def test_a_transport_error_before_any_answer_resends_the_prompt_unchanged(make_service, fake):
    fake.script("app4_analysis", ["500", "ok"])
    make_service().call_app("app4_analysis", PROMPT, site_id=1)
    assert [r["prompt"] for r in fake.requests("app4_analysis")] == [PROMPT_TEXT, PROMPT_TEXT]


def test_a_correction_goes_as_a_follow_up_in_the_given_session_and_is_ledgered(make_service, fake, db_url):
    service = make_service()
    fake.script("app3_clue", [{"answer": {"clues": [{"emoji": "🙂"}]}}])
    wrong = service.call_app("app3_clue", PROMPT, site_id=1, target_id="9")
    correction = Correction.of(json.dumps(wrong.payload, ensure_ascii=False), ["clues.0.category: Field required"])

    right = service.call_app(
        "app3_clue", PROMPT, site_id=1, target_id="9", session_id=wrong.session_id, correction=correction
    )

    resent = fake.requests("app3_clue")[1]
    assert (resent["prompt"], resent["session_id"]) == (correction.follow_up(), wrong.session_id)
    assert "- clues.0.category: Field required" in resent["prompt"]
    validate_answer("app3_clue", right.payload)  # answered from the prompt that opened the session
    rows = ledger(db_url)
    assert [r["request_prompt"] for r in rows] == [PROMPT_TEXT, correction.standalone(PROMPT_TEXT)]
    assert rows[1]["session_id"] == wrong.session_id and rows[1]["tokens_in"] > 0
