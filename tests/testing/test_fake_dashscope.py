"""The fake DashScope server: wire framing, the unmodified SDK against it, scripting in and out of process."""

from __future__ import annotations

import contextlib
import http.client
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import dashscope
import pytest
import requests
from dashscope import Application

from zqyy_assets.core.answer_schemas import validate_answer
from zqyy_assets.core.llm import offline
from zqyy_assets.core.llm.correction import Correction
from zqyy_assets.testing.fake_dashscope import FakeAdmin, FakeDashScope, demo_env

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake():
    with FakeDashScope(chunks=3) as server:
        yield server


def _post(fake: FakeDashScope, app_id: str, body: dict, *, sse: bool) -> tuple[int, dict, str]:
    conn = http.client.HTTPConnection(fake.host, fake.port, timeout=5)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer k"}
    if sse:
        headers.update({"Accept": "text/event-stream", "X-DashScope-SSE": "enable"})
    conn.request("POST", f"/api/v1/apps/{app_id}/completion", json.dumps(body), headers)
    response = conn.getresponse()
    text = response.read().decode("utf-8")
    conn.close()
    return response.status, dict(response.getheaders()), text


def test_sse_is_framed_like_the_service(fake):
    fake.script("app3_clue", tokens=(50, 30))
    status, headers, text = _post(
        fake, "fake-app3_clue", {"input": {"prompt": "{}"}, "parameters": {"incremental_output": True}}, sse=True
    )

    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = [e.split("\n") for e in text.strip("\n").split("\n\n")]
    assert len(events) == 3
    datas = []
    for number, lines in enumerate(events, start=1):
        assert lines[:3] == [f"id:{number}", "event:result", ":HTTP_STATUS/200"]
        assert lines[3].startswith("data:{")  # no space after the colon
        datas.append(json.loads(lines[3][len("data:") :]))
    assert [d["output"]["finish_reason"] for d in datas] == ["null", "null", "stop"]
    outs = [d["usage"]["models"][0]["output_tokens"] for d in datas]
    assert outs == sorted(outs) and outs[-1] == 30  # cumulative
    assert len({d["output"]["session_id"] for d in datas}) == 1 and len({d["request_id"] for d in datas}) == 1
    answer = json.loads("".join(d["output"]["text"] for d in datas))  # incremental: deltas join up
    validate_answer("app3_clue", answer)


def test_non_incremental_stream_sends_cumulative_text(fake):
    _, _, text = _post(fake, "fake-app6_note", {"input": {"prompt": "{}"}, "parameters": {}}, sse=True)
    texts = [json.loads(line[5:])["output"]["text"] for line in text.split("\n") if line.startswith("data:")]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(texts))
    validate_answer("app6_note", json.loads(texts[-1]))


def test_errors_are_json_with_status_and_in_stream_as_error_events(fake):
    fake.script("app2_finance", ["429", "stream_error:1:Throttling.RateQuota"])
    status, headers, text = _post(fake, "fake-app2_finance", {"input": {"prompt": "{}"}}, sse=False)
    assert status == 429 and headers["Content-Type"].startswith("application/json")
    error = json.loads(text)
    assert set(error) == {"code", "message", "request_id"} and error["code"] == "Throttling.RateQuota"

    status, _, text = _post(fake, "fake-app2_finance", {"input": {"prompt": "{}"}}, sse=True)
    assert status == 200
    last = text.strip("\n").split("\n\n")[-1].split("\n")
    assert last[:3] == ["id:2", "event:error", ":HTTP_STATUS/429"]
    assert json.loads(last[3][5:])["code"] == "Throttling.RateQuota"
    assert [r["step"] for r in fake.requests()] == ["429:Throttling.RateQuota", "stream_error"]


def test_the_unmodified_sdk_reads_it_through_its_module_base_url(fake, monkeypatch):
    monkeypatch.setattr(dashscope, "base_http_api_url", fake.base_url)
    fake.script("app7_customer", tokens=(70, 7), usage_shape="flat")
    response = Application.call(app_id="fake-app7_customer", prompt='{"recency_days": 3}', api_key="k")
    assert response.status_code == 200 and response.usage["input_tokens"] == 70
    validate_answer("app7_customer", json.loads(response.output.text))

    chunks = list(
        Application.call(
            app_id="fake-app1_chat", prompt="你好", api_key="k", stream=True, incremental_output=True, session_id="s1"
        )
    )
    assert [c.output.finish_reason for c in chunks][-1] == "stop"
    assert {c.output.session_id for c in chunks} == {"s1"}


def test_a_required_key_is_checked(monkeypatch):
    with FakeDashScope(api_key="right") as fake:
        wrong = Application.call(app_id="fake-app3_clue", prompt="{}", api_key="wrong", base_address=fake.base_url)
        right = Application.call(app_id="fake-app3_clue", prompt="{}", api_key="right", base_address=fake.base_url)
    assert (wrong.status_code, wrong.code) == (401, "InvalidApiKey") and right.status_code == 200


def test_standalone_process_is_scripted_over_http():
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zqyy_assets.testing.fake_dashscope",
            "--port",
            "0",
            "--latency-ms",
            "20",
            "--print-env",
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stderr.readline()
        base_url = re.search(r"(http://\S+/api/v1)", line).group(1)
        admin = FakeAdmin(base_url)
        admin.reset()
        admin.script("app3_clue", ["500", "ok"], tokens=[11, 22])

        first = Application.call(app_id="fake-app3_clue", prompt="{}", api_key="k", base_address=base_url)
        second = Application.call(app_id="fake-app3_clue", prompt="{}", api_key="k", base_address=base_url)

        assert (first.status_code, first.code) == (500, "InternalError")
        assert second.status_code == 200 and second.usage.models[0].input_tokens == 11
        received = admin.requests("app3_clue")
        assert [r["step"] for r in received] == ["500:InternalError", "ok"] and admin.count() == 2
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0
    exports = dict(re.findall(r"export (\w+)='([^']*)'", out))
    assert exports["DASHSCOPE_BASE_URL"] == base_url and exports["ZQYY_LLM_PROVIDER"] == "dashscope"
    assert exports == demo_env(base_url)


def test_a_stopped_server_leaves_no_kept_alive_connection_behind():
    # The SDK pools connections; a restarted server on the same port must get the next request.
    first = FakeDashScope().start()
    port = first.port
    assert (
        Application.call(app_id="fake-app3_clue", prompt="{}", api_key="k", base_address=first.base_url).status_code
        == 200
    )
    first.stop()
    with FakeDashScope(port=port) as second:
        assert (
            Application.call(
                app_id="fake-app3_clue", prompt="{}", api_key="k", base_address=second.base_url
            ).status_code
            == 200
        )
        assert second.count() == 1
    assert first.count() == 1


def test_a_step_can_carry_its_own_answer_and_a_re_ask_is_answered_from_its_session(fake):
    fake.script("app2_finance", [{"answer": {"insights": []}}, {"answer": {"x": 1}, "session": False}])
    metrics = {"revenue": 52000, "table_fee": 30000, "assistant_fee": 12000, "goods_amount": 10000}
    prompt = json.dumps(
        {
            "time_dimension": "this_month",
            "area": "all",
            "period": {"start": "2026-11-01", "end": "2026-11-22", "metrics": metrics},
            "comparison": {"start": "2026-10-01", "end": "2026-10-22", "metrics": {**metrics, "revenue": 40000}},
        }
    )
    _, _, text = _post(fake, "fake-app2_finance", {"input": {"prompt": prompt}}, sse=False)
    first = json.loads(text)["output"]
    assert json.loads(first["text"]) == {"insights": []} and first["session_id"]
    _, _, text = _post(fake, "fake-app2_finance", {"input": {"prompt": prompt}}, sse=False)
    second = json.loads(text)["output"]
    assert json.loads(second["text"]) == {"x": 1} and not second["session_id"]
    # A re-ask in the first answer's session (the scripted steps are spent) is answered from the
    # prompt that opened the session, not from the re-ask's own text.
    follow_up = Correction.of("{}", ["insights: List should have at least 1 item"]).follow_up()
    body = {"input": {"prompt": follow_up, "session_id": first["session_id"]}}
    _, _, text = _post(fake, "fake-app2_finance", body, sse=False)
    again = json.loads(json.loads(text)["output"]["text"])
    assert again == {k: v for k, v in offline.analyse("app2_finance", prompt).items() if k != "_provider"}
    assert again != {k: v for k, v in offline.analyse("app2_finance", follow_up).items() if k != "_provider"}


def _call(fake: FakeDashScope, stream: bool = False):
    return Application.call(
        app_id="fake-app3_clue", prompt="{}", api_key="k", base_address=fake.base_url, stream=stream
    )


def test_a_seeded_fault_mix_draws_each_fault_at_its_rate_and_repeats_with_its_seed():
    mix = {"429": 0.10, "500": 0.05, "invalid_json": 0.05}
    draws = []
    for _ in range(2):
        fake = FakeDashScope()  # the draw itself (each request takes one step), without the HTTP round trips
        try:
            fake.script("*", mix=mix, seed=11)
            step_names = [fake.next_step("app3_clue")[0] for _ in range(2000)]
        finally:
            fake.close()
        draws.append([s.kind if s.kind != "error" else f"{s.status}:{s.code}" for s in step_names])
    assert draws[0] == draws[1]  # one seed, one sequence
    steps = draws[0]
    share = {step: steps.count(step) / len(steps) for step in set(steps)}
    assert 0.07 < share["429:Throttling.RateQuota"] < 0.13
    assert 0.03 < share["500:InternalError"] < 0.07 and 0.03 < share["invalid_json"] < 0.07
    assert 0.76 < share["ok"] < 0.84


def test_queued_steps_come_before_the_mix_and_an_empty_mix_clears_it():
    with FakeDashScope() as fake:
        fake.script("*", ["500"], mix={"429": 1.0})
        first, second = _call(fake), _call(fake)
        fake.script("*", mix={})
        third = _call(fake)
    assert [first.status_code, second.status_code, third.status_code] == [500, 429, 200]


def test_a_bad_mix_is_refused_naming_it():
    with FakeDashScope() as fake:
        with pytest.raises(ValueError, match="more than 1"):
            fake.script("*", mix={"429": 0.7, "500": 0.5})
        with pytest.raises(ValueError, match="unknown fake step"):
            fake.script("*", mix={"boom": 0.1})


def test_a_hang_is_silence_then_a_closed_connection_and_bills_nothing():
    with FakeDashScope() as fake:
        fake.script("app3_clue", ["hang:300"])
        conn = http.client.HTTPConnection(fake.host, fake.port, timeout=5)
        conn.request("POST", "/api/v1/apps/fake-app3_clue/completion", "{}", {"Content-Type": "application/json"})
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.getresponse()
        assert fake.summary()["tokens_in"] == 0 and fake.requests()[0]["step"] == "hang"


def test_the_summary_bills_the_usage_sent_whole_and_a_cut_stream_its_last_chunk():
    with FakeDashScope(chunks=4) as fake:
        fake.script("app3_clue", ["ok", "cut:2", "500", "cut"], tokens=(100, 40))
        assert _call(fake).status_code == 200
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            list(_call(fake, stream=True))  # two chunks sent, then the connection closes
        _call(fake)
        with contextlib.suppress(requests.exceptions.RequestException):
            _call(fake)  # a cut plain body: half a response, no usage sent whole
        summary = fake.summary()
    billed = [(r["step"], r["tokens_in"], r["tokens_out"]) for r in fake.requests()]
    assert billed == [("ok", 100, 40), ("cut", 100, 20), ("500:InternalError", 0, 0), ("cut", 0, 0)]
    assert (summary["requests"], summary["tokens_in"], summary["tokens_out"]) == (4, 200, 60)
    assert summary["steps"] == {"ok": 1, "cut": 2, "500:InternalError": 1}
