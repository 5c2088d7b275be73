"""Re-asks through the OpenAI-compatible provider: a correction travels as two more turns
(the previous answer as the assistant's, what was wrong as the user's), through the real
``openai`` SDK to the fake server, on a real database."""

from __future__ import annotations

import json

from tests.core.llm.test_openai_provider import CLUE_PROMPT
from zqyy_assets.core import answering
from zqyy_assets.core.llm.correction import REASK_MARK
from zqyy_assets.core.llm.service import LLMService
from zqyy_assets.testing.fake_openai import FakeOpenAI


def _run(service: LLMService, db_url: str) -> answering.Outcome:
    run = answering.RunInfo(
        provider=service.provider, trigger="manual", force=False, dagster_run_id=None, routes=service.routes()
    )
    # A target of its own: this module's database keeps the answer cache between tests.
    ask = answering.Ask(site_id=1, app_name="app3_clue", target_id="reask-43", prompt=CLUE_PROMPT, prompt_version="r1")
    [outcome] = answering.iter_answers(service, db_url, [ask], run, concurrency=1)
    return outcome


def test_an_answer_outside_its_schema_is_re_asked_as_turns(make_openai, openai_fake: FakeOpenAI, db_url) -> None:
    wrong = {"clues": [{"category": "", "summary": "常客"}]}
    openai_fake.script("app3_clue", [{"answer": wrong}, "ok"])
    outcome = _run(make_openai(), db_url)

    assert (outcome.status, outcome.calls, outcome.invalid_answers) == ("answered", 2, 1)
    first, second = openai_fake.requests("app3_clue")
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    assert second["messages"][:2] == first["messages"]  # the prompt itself, unchanged
    assert json.loads(second["messages"][2]["content"]) == wrong
    follow_up = second["messages"][3]["content"]
    assert follow_up.startswith(REASK_MARK)
    assert "- clues.0.category: String should have at least 1 character" in follow_up.splitlines()


def test_an_answer_that_is_not_json_is_re_asked_within_the_call(make_openai, openai_fake: FakeOpenAI, db_url) -> None:
    openai_fake.script("app3_clue", ["invalid_json", "ok"])
    answer = make_openai(max_attempts=2).call_app("app3_clue", CLUE_PROMPT, site_id=1, target_id="42")

    assert answer.attempts == 2
    first, second = openai_fake.requests("app3_clue")
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user"]
    broken = second["messages"][2]["content"]  # the cut answer, quoted back as the assistant's turn
    assert broken and not _is_json(broken)
    assert "不是合法的 JSON" in second["messages"][3]["content"]


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True
