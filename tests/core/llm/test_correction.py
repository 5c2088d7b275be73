"""Correction: what was wrong with an answer, told back to the model; how DashScope carries it."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from zqyy_assets.core.answer_schemas import validate_answer
from zqyy_assets.core.llm.client import dashscope_request
from zqyy_assets.core.llm.correction import MAX_PREVIOUS_CHARS, MAX_PROBLEMS, REASK_MARK, Correction

BROKEN_CLUES = {"clues": [{"category": "", "summary": "常客"}, {"emoji": "🙂"}]}


def _error(app_name: str, payload: dict) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        validate_answer(app_name, payload)
    return caught.value


def test_every_schema_error_is_a_problem_named_by_its_field_path() -> None:
    correction = Correction.from_validation_error("{...}", _error("app3_clue", BROKEN_CLUES))
    assert correction.problems == (
        "clues.0.category: String should have at least 1 character",
        "clues.1.category: Field required",
        "clues.1.summary: Field required",
    )
    assert correction.omitted == 0
    assert correction.reason == "; ".join(correction.problems)


def test_an_error_about_the_whole_answer_is_named_answer() -> None:
    class Whole(BaseModel):
        x: int

    with pytest.raises(ValidationError) as caught:
        Whole.model_validate([1])
    [problem] = Correction.from_validation_error("[1]", caught.value).problems
    assert problem.startswith("answer: ")


def test_problems_are_capped_and_the_rest_counted() -> None:
    many = {"clues": [{"emoji": "x"} for _ in range(MAX_PROBLEMS)]}  # two errors each
    correction = Correction.from_validation_error("{...}", _error("app3_clue", many))
    assert len(correction.problems) == MAX_PROBLEMS and correction.omitted == MAX_PROBLEMS
    assert f"另有 {MAX_PROBLEMS} 处问题未列出" in correction.follow_up()
    assert correction.reason.endswith(f"; +{MAX_PROBLEMS} more")


def test_the_follow_up_lists_each_field_and_asks_for_corrected_json_only() -> None:
    text = Correction.from_validation_error("{...}", _error("app3_clue", BROKEN_CLUES)).follow_up()
    assert text.startswith(REASK_MARK)
    for line in (
        "- clues.0.category: String should have at least 1 character",
        "- clues.1.category: Field required",
        "- clues.1.summary: Field required",
    ):
        assert line in text.splitlines()
    assert "只返回更正后的完整 JSON" in text


def test_an_answer_that_is_not_json_is_told_so() -> None:
    correction = Correction.not_json('{"clues": [', "answer is not valid JSON (Expecting value at 11)")
    assert correction.problems == ("answer: 不是合法的 JSON 对象（answer is not valid JSON (Expecting value at 11)）",)
    assert "不是合法的 JSON" in correction.follow_up()


def test_a_standalone_re_ask_quotes_the_prompt_then_the_answer_then_the_problems() -> None:
    correction = Correction.of('{"clues": 1}', ["clues: Input should be a valid list"])
    text = correction.standalone('{"member": 1}')
    assert text.index('{"member": 1}') == 0
    assert text.index('{"clues": 1}') < text.index(REASK_MARK) < text.index("clues: Input should be a valid list")


def test_a_long_previous_answer_is_cut_in_a_standalone_re_ask() -> None:
    long = "x" * (MAX_PREVIOUS_CHARS + 500)
    text = Correction.of(long, ["answer: bad"]).standalone("{}")
    assert "x" * MAX_PREVIOUS_CHARS in text and "x" * (MAX_PREVIOUS_CHARS + 1) not in text
    assert f"共 {len(long)} 字符" in text


def test_a_correction_names_a_problem() -> None:
    with pytest.raises(ValueError):
        Correction.of("{}", [])


def test_dashscope_sends_a_correction_in_the_answers_session_else_in_one_prompt() -> None:
    correction = Correction.of("{}", ["clues: Field required"])
    assert dashscope_request("{}", None, None) == ("{}", None)
    assert dashscope_request("{}", "s1", None) == ("{}", "s1")
    assert dashscope_request("{}", "s1", correction) == (correction.follow_up(), "s1")
    assert dashscope_request("{}", None, correction) == (correction.standalone("{}"), None)
