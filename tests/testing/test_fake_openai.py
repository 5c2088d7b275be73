"""The fake OpenAI-compatible server: wire framing, the unmodified ``openai`` SDK against it, scripting."""

from __future__ import annotations

import http.client
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from zqyy_assets.core.answer_schemas import validate_answer
from zqyy_assets.core.apps import system_prompt
from zqyy_assets.testing.fake_openai import FakeAdmin, FakeOpenAI, demo_env

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake():
    with FakeOpenAI(chunks=3) as server:
        yield server


def _messages(app: str, prompt: str = "{}") -> list[dict]:
    return [{"role": "system", "content": system_prompt(app)}, {"role": "user", "content": prompt}]


def _client(fake: FakeOpenAI, **kwargs) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="k", max_retries=0, **{"timeout": 5.0, **kwargs})


def _post(fake: FakeOpenAI, body: dict) -> tuple[int, dict, str]:
    conn = http.client.HTTPConnection(fake.host, fake.port, timeout=5)
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    text = response.read().decode("utf-8")
    conn.close()
    return response.status, dict(response.getheaders()), text


def test_a_completion_is_framed_like_openai_and_answers_the_app_of_its_system_prompt(fake):
    fake.script("app3_clue", tokens=(50, 30))
    status, headers, text = _post(fake, {"model": "qwen-plus", "messages": _messages("app3_clue")})

    assert status == 200 and headers["Content-Type"].startswith("application/json")
    body = json.loads(text)
    assert body["object"] == "chat.completion" and body["model"] == "qwen-plus"
    assert body["usage"] == {"prompt_tokens": 50, "completion_tokens": 30, "total_tokens": 80}
    (choice,) = body["choices"]
    assert choice["finish_reason"] == "stop" and choice["message"]["role"] == "assistant"
    validate_answer("app3_clue", json.loads(choice["message"]["content"]))
    (received,) = fake.requests("app3_clue")
    assert received["model"] == "qwen-plus" and received["prompt"] == "{}" and not received["stream"]


def test_a_stream_sends_deltas_then_usage_only_when_asked_then_done(fake):
    fake.script("app6_note", tokens=(40, 12))
    body = {"model": "m", "messages": _messages("app6_note"), "stream": True}
    _, headers, with_usage = _post(fake, {**body, "stream_options": {"include_usage": True}})
    _, _, without = _post(fake, body)

    assert headers["Content-Type"].startswith("text/event-stream")
    events = [e for e in with_usage.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    chunks = [json.loads(e[len("data: ") :]) for e in events[:-1]]
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]] == [None, None, None, "stop"]
    assert all(c["usage"] is None for c in chunks[:-1]) and chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 40, "completion_tokens": 12, "total_tokens": 52}
    validate_answer("app6_note", json.loads("".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1])))
    assert "usage" not in without and without.endswith("data: [DONE]\n\n")
    assert [r["include_usage"] for r in fake.requests()] == [True, False]


def test_the_unmodified_sdk_reads_answers_streams_and_usage(fake):
    client = _client(fake)
    answer = client.chat.completions.create(
        model="qwen-plus", messages=_messages("app7_customer"), response_format={"type": "json_object"}
    )
    validate_answer("app7_customer", json.loads(answer.choices[0].message.content or ""))

    stream = client.chat.completions.create(
        model="qwen-plus", messages=_messages("app1_chat", "你好"), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert [r["response_format"] for r in fake.requests()] == ["json_object", None]


def test_scripted_failures_reach_the_sdk_as_its_own_errors(fake):
    fake.script(
        "app2_finance",
        ["429", "500", "401", "data_inspection", "error:404:model_not_found", "drop", "cut:1", "invalid_json"],
    )
    client, messages = _client(fake), _messages("app2_finance")
    caught = []
    for _ in range(7):
        with pytest.raises(openai.OpenAIError) as info:
            client.chat.completions.create(model="m", messages=messages)
        caught.append((type(info.value).__name__, getattr(info.value, "status_code", None), info.value.code))
    assert caught == [
        ("RateLimitError", 429, "rate_limit_exceeded"),
        ("InternalServerError", 500, "internal_error"),
        ("AuthenticationError", 401, "invalid_api_key"),
        ("BadRequestError", 400, "data_inspection_failed"),
        ("NotFoundError", 404, "model_not_found"),
        ("APIConnectionError", None, None),  # dropped before a response
        ("APIConnectionError", None, None),  # the body broke off
    ]
    text = client.chat.completions.create(model="m", messages=messages).choices[0].message.content or ""
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_stream_failures_an_error_event_and_a_cut(fake):
    fake.script("app1_chat", ["stream_error:2:Throttling.RateQuota", "cut:1"])
    client, messages = _client(fake), _messages("app1_chat", "你好")
    seen = []
    with pytest.raises(openai.APIError) as info:
        for chunk in client.chat.completions.create(model="m", messages=messages, stream=True):
            seen.append(chunk)
    assert len(seen) == 2 and info.value.code == "rate_limit_exceeded"
    with pytest.raises(httpx.RemoteProtocolError):
        list(client.chat.completions.create(model="m", messages=messages, stream=True))


def test_a_timeout_step_answers_nothing_until_the_client_gives_up(fake):
    fake.script("app3_clue", ["timeout"])
    client = _client(fake, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="m", messages=_messages("app3_clue"))
    assert time.monotonic() - started < 30  # the client's time-out ended it, not the fake's own limit
    assert client.chat.completions.create(model="m", messages=_messages("app3_clue")).choices


def test_scripts_by_model_and_latency_per_app(fake):
    fake.script("qwen-max", ["500"], model="qwen-max-2026")
    fake.script("app3_clue", latency_ms=300)
    client = _client(fake)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="qwen-max", messages=_messages("app4_analysis"))
    assert client.chat.completions.create(model="qwen-max", messages=_messages("app4_analysis")).model == (
        "qwen-max-2026"
    )
    started = time.monotonic()
    client.chat.completions.create(model="qwen-plus", messages=_messages("app3_clue"))
    assert time.monotonic() - started >= 0.3
    assert fake.count("qwen-max") == 2 and fake.count("app3_clue") == 1 and fake.count() == 3


def test_a_server_without_json_schema_refuses_it_and_a_required_key_is_checked():
    schema = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    with FakeOpenAI(json_schema=False, api_key="right") as fake:
        right = openai.OpenAI(base_url=fake.base_url, api_key="right", max_retries=0)
        with pytest.raises(openai.BadRequestError):
            right.chat.completions.create(model="m", messages=_messages("app3_clue"), response_format=schema)
        assert right.chat.completions.create(
            model="m", messages=_messages("app3_clue"), response_format={"type": "json_object"}
        ).choices
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=fake.base_url, api_key="wrong", max_retries=0).chat.completions.create(
                model="m", messages=_messages("app3_clue")
            )


def test_standalone_process_is_scripted_over_http():
    proc = subprocess.Popen(
        [sys.executable, "-m", "zqyy_assets.testing.fake_openai", "--port", "0", "--print-env"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()
        base_url = re.search(r"(http://\S+/v1)", line).group(1)
        admin = FakeAdmin(base_url)
        admin.reset()
        admin.script("app3_clue", ["500", "ok"], tokens=[11, 22])
        client = openai.OpenAI(base_url=base_url, api_key="k", max_retries=0, timeout=10)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=_messages("app3_clue"))
        second = client.chat.completions.create(model="m", messages=_messages("app3_clue"))
        assert second.usage is not None and second.usage.prompt_tokens == 11
        assert [r["step"] for r in admin.requests("app3_clue")] == ["500:InternalError", "ok"]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert dict(re.findall(r"export (\w+)='([^']*)'", out)) == demo_env(base_url)
