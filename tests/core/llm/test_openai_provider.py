"""The OpenAI-compatible provider: the real ``openai`` SDK against the fake OpenAI-compatible server,
on a real database: messages, structured output, usage, errors by class, streams, the memo key."""

from __future__ import annotations

import json

import pytest

from tests.core.llm.conftest import ledger
from zqyy_assets.core import answering, cache
from zqyy_assets.core.answer_schemas import SCHEMAS, validate_answer
from zqyy_assets.core.apps import prompt_version, system_prompt
from zqyy_assets.core.llm.errors import (
    AnswerTimeout,
    PermanentLLMError,
    StreamInterrupted,
    TransientLLMError,
    about_input,
    classify_openai,
)
from zqyy_assets.core.llm.service import LLMService
from zqyy_assets.testing.fake_openai import FakeOpenAI

CLUE_PROMPT = {"member": {"member_id": 42, "recency_days": 3, "visits_30d": 5}}


def test_the_system_prompt_is_the_system_message_and_the_prompt_json_the_user_message(make_openai, openai_fake, db_url):
    openai_fake.script("app3_clue", tokens=(700, 120))
    answer = make_openai().call_app("app3_clue", CLUE_PROMPT, site_id=1, target_id="42", trigger_type="manual")

    validate_answer("app3_clue", answer.payload)
    assert (answer.provider, answer.model, answer.tokens_in, answer.tokens_out) == ("openai", "qwen-plus", 700, 120)
    assert answer.prompt_version == prompt_version("app3_clue") and answer.attempts == 1
    [received] = openai_fake.requests("app3_clue")
    assert [m["role"] for m in received["messages"]] == ["system", "user"]
    assert received["system"] == system_prompt("app3_clue") and json.loads(received["prompt"]) == CLUE_PROMPT
    assert received["model"] == "qwen-plus" and received["has_bearer"] and not received["stream"]
    assert received["response_format"] == "json_schema"
    assert received["json_schema"]["schema"] == SCHEMAS["app3_clue"].model_json_schema()
    [row] = ledger(db_url)
    assert (row["provider"], row["model"], row["status"], row["app_id"]) == ("openai", "qwen-plus", "success", None)
    assert (row["tokens_in"], row["tokens_out"], row["request_id"]) == (700, 120, received["request_id"])
    assert row["fallback_for"] is None and float(row["cost_cny"]) > 0


def test_each_app_may_name_its_own_model_and_json_object_is_a_setting(make_openai, openai_fake, monkeypatch):
    monkeypatch.setenv("ZQYY_LLM_MODEL_APP6_NOTE", "qwen-max")
    service = make_openai(response_format="json_object")
    service.call_app("app6_note", {"note_content": "喜欢斯诺克"}, site_id=1)
    service.call_app("app3_clue", CLUE_PROMPT, site_id=1)

    assert [(r["app"], r["model"], r["response_format"]) for r in openai_fake.requests()] == [
        ("app6_note", "qwen-max", "json_object"),
        ("app3_clue", "qwen-plus", "json_object"),
    ]


def test_a_server_without_json_schema_refuses_it_permanently_and_json_object_is_the_way(make_openai, db_url):
    with FakeOpenAI(json_schema=False) as fake:
        with pytest.raises(PermanentLLMError) as caught:
            make_openai(openai_base_url=fake.base_url).call_app("app3_clue", CLUE_PROMPT, site_id=1)
        answer = make_openai(openai_base_url=fake.base_url, response_format="json_object").call_app(
            "app3_clue", CLUE_PROMPT, site_id=1
        )
    assert caught.value.code == "invalid_parameter" and "json_schema" in caught.value.message
    validate_answer("app3_clue", answer.payload)
    assert [r["response_format"] for r in fake.requests()] == ["json_schema", "json_object"]


def test_transient_errors_are_retried_throttling_longer(make_openai, openai_fake, db_url):
    openai_fake.script("app3_clue", ["429", "503", "drop"], tokens=(100, 10))
    waits: list[float] = []
    service = make_openai(max_attempts=4, sleep=waits.append)

    answer = service.call_app("app3_clue", CLUE_PROMPT, site_id=1)

    assert answer.attempts == 4 and openai_fake.count() == 4
    # base 0.01 s, cap 0.05 s: after the 429 at least half of 0.04 (x4), after the 503 at most 0.02
    assert waits[0] >= 0.02 >= waits[1]
    [row] = ledger(db_url)
    assert (row["status"], row["attempts"]) == ("success", 4)


@pytest.mark.parametrize(
    ("step", "code"),
    [
        ("400", "invalid_parameter"),
        ("401", "invalid_api_key"),
        ("403", "access_denied"),
        ("error:404:model_not_found", "model_not_found"),
        ("data_inspection", "data_inspection_failed"),
    ],
)
def test_client_errors_are_permanent_after_one_request(make_openai, openai_fake, db_url, step, code):
    openai_fake.script("app3_clue", [step])
    with pytest.raises(PermanentLLMError) as caught:
        make_openai().call_app("app3_clue", CLUE_PROMPT, site_id=1)
    assert caught.value.code == code and openai_fake.count() == 1
    [row] = ledger(db_url)
    assert (row["status"], row["error_code"], row["attempts"]) == ("failed", code, 1)


def test_invalid_json_is_retried_and_its_tokens_are_counted(make_openai, openai_fake, db_url):
    openai_fake.script("app3_clue", ["invalid_json", "invalid_json"], tokens=(50, 5))
    with pytest.raises(TransientLLMError) as caught:
        make_openai(max_attempts=2).call_app("app3_clue", CLUE_PROMPT, site_id=1)
    assert caught.value.code == "InvalidJSON"
    [row] = ledger(db_url)
    assert (row["status"], row["attempts"], row["tokens_in"], row["tokens_out"]) == ("failed", 2, 100, 10)


def test_a_request_that_times_out_is_retried_then_ledgered_timeout(make_openai, openai_fake, db_url):
    openai_fake.script("app3_clue", ["timeout", "timeout"])
    with pytest.raises(AnswerTimeout):
        make_openai(max_attempts=2, request_timeout_seconds=0.3).call_app("app3_clue", CLUE_PROMPT, site_id=1)
    assert openai_fake.count() == 2
    [row] = ledger(db_url)
    assert (row["status"], row["error_code"], row["attempts"]) == ("timeout", "Timeout", 2)


def test_a_missing_model_or_server_is_a_booked_configuration_error(make_openai, openai_fake, db_url):
    with pytest.raises(PermanentLLMError) as no_model:
        make_openai(model=None).call_app("app3_clue", CLUE_PROMPT, site_id=1)
    with pytest.raises(PermanentLLMError) as no_server:
        make_openai(openai_base_url=None, openai_api_key=None).call_app("app3_clue", CLUE_PROMPT, site_id=1)
    assert (no_model.value.code, no_server.value.code) == ("ModelMissing", "ApiKeyMissing")
    assert "ZQYY_LLM_MODEL_APP3_CLUE" in no_model.value.message
    assert [r["error_code"] for r in ledger(db_url)] == ["ModelMissing", "ApiKeyMissing"]
    assert openai_fake.count() == 0


def test_the_chat_streams_with_usage(make_openai, openai_fake, db_url):
    openai_fake.script("app1_chat", chunks=5, tokens=(300, 80))
    deltas = list(make_openai().stream_chat("本月营业额怎么样？", site_id=3, session_id="sess-9", target_id="chat-1"))

    text, done = deltas[:-1], deltas[-1]
    assert len(text) == 5 and all(d.text for d in text) and {d.session_id for d in deltas} == {"sess-9"}
    assert done.done and (done.tokens_in, done.tokens_out) == (300, 80)
    [received] = openai_fake.requests("app1_chat")
    assert received["stream"] and received["include_usage"] and received["response_format"] is None
    assert received["prompt"] == "本月营业额怎么样？"
    [row] = ledger(db_url)
    assert (row["provider"], row["status"], row["streamed"], row["tokens_in"], row["tokens_out"]) == (
        "openai",
        "success",
        True,
        300,
        80,
    )
    assert row["response_text"] == "".join(d.text for d in deltas)


def test_a_new_chat_gets_a_session_id(make_openai):
    session_ids = {d.session_id for d in make_openai().stream_chat("你好", site_id=1)}
    assert len(session_ids) == 1 and None not in session_ids


def test_stream_errors_before_text_are_retried_after_text_they_interrupt(make_openai, openai_fake, db_url):
    openai_fake.script("app1_chat", ["stream_error:0:Throttling.RateQuota", "cut:2"], chunks=5)
    received: list[str] = []
    with pytest.raises(StreamInterrupted) as caught:
        for delta in make_openai().stream_chat("你好", site_id=1):
            received.append(delta.text)
    assert len(received) == 2 and caught.value.partial_text == "".join(received)
    assert openai_fake.count() == 2  # the error event came before any text: retried; the cut after: not
    [row] = ledger(db_url)
    assert (row["status"], row["error_code"], row["attempts"]) == ("failed", "StreamCut", 2)


def _ask() -> answering.Ask:
    return answering.Ask(site_id=1, app_name="app3_clue", target_id="42", prompt=CLUE_PROMPT, prompt_version="b1")


def _run(service: LLMService, db_url: str) -> answering.Outcome:
    run = answering.RunInfo(
        provider=service.provider, trigger="manual", force=False, dagster_run_id=None, routes=service.routes()
    )
    [outcome] = answering.iter_answers(service, db_url, [_ask()], run, concurrency=1)
    return outcome


def test_provider_and_model_are_in_the_memo_key(make_openai, openai_fake, db_url):
    with pytest.MonkeyPatch.context() as env:
        env.delenv("ZQYY_LLM_MODEL_APP3_CLUE", raising=False)
        first = _run(make_openai(), db_url)
        again = _run(make_openai(), db_url)
        other_model = _run(make_openai(model="qwen-max"), db_url)

    assert (first.status, again.status, other_model.status) == ("answered", "hit", "answered")
    assert [r["model"] for r in openai_fake.requests("app3_clue")] == ["qwen-plus", "qwen-max"]
    assert first.answer is not None and other_model.answer is not None
    assert first.answer.prompt_version.startswith("openai/qwen-plus:b1+sys.")
    assert other_model.answer.input_hash != first.answer.input_hash
    dashscope = answering.prepare(_ask(), "dashscope")
    assert dashscope.version == cache.app_version(
        prompt_version="b1", system_prompt_version=prompt_version("app3_clue"), provider="dashscope"
    )
    assert dashscope.version.startswith("dashscope:b1+sys.")  # the DashScope key is what it always was


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, "insufficient_quota", "permanent"),  # a 429 no retry fixes: the account is out of quota
        (429, None, "throttled"),
        (408, None, "transient"),
        (502, "bad_gateway", "transient"),
        (400, "context_length_exceeded", "permanent"),
        (None, "internal_error", "transient"),  # an error event in a stream: its code decides
        (None, "rate_limit_exceeded", "throttled"),
        (None, "data_inspection_failed", "permanent"),
    ],
)
def test_openai_errors_classified_by_status_and_code(status, code, kind):
    assert classify_openai(status, code) == kind


def test_only_errors_about_the_input_are_about_the_input():
    assert about_input("DataInspectionFailed") and about_input("data_inspection_failed")
    assert about_input("context_length_exceeded") and about_input("content_filter")
    assert not about_input("invalid_api_key") and not about_input("InvalidApiKey") and not about_input(None)
