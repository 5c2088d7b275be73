"""The chat stream with the real SDK against the fake server: deltas, session, errors by code, cuts."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.core.llm.conftest import ledger
from zqyy_assets.core.llm.errors import PermanentLLMError, StreamInterrupted

QUESTION = {"question": "本月营业额怎么样？", "page": {"revenue": 52000}}


def test_stream_yields_deltas_and_keeps_the_session(make_service, fake, db_url):
    fake.script("app1_chat", chunks=5, tokens=(300, 80))
    deltas = list(make_service().stream_chat(str(QUESTION), site_id=3, session_id="sess-9", target_id="chat-1"))

    text, done = deltas[:-1], deltas[-1]
    assert len(text) == 5 and all(d.text for d in text)
    assert {d.session_id for d in deltas} == {"sess-9"}
    assert done.done and done.text == "" and (done.tokens_in, done.tokens_out) == (300, 80)
    [received] = fake.requests("app1_chat")
    assert received["stream"] and received["incremental_output"] and received["session_id"] == "sess-9"
    [row] = ledger(db_url)
    assert row["status"] == "success" and row["streamed"] and row["id"] == done.ledger_id
    assert row["response_text"] == "".join(d.text for d in deltas)
    assert (row["tokens_in"], row["tokens_out"], row["session_id"], row["target_id"]) == (300, 80, "sess-9", "chat-1")


def test_new_chat_gets_its_session_id_from_the_stream(make_service, fake):
    deltas = list(make_service().stream_chat("你好", site_id=1))
    session_ids = {d.session_id for d in deltas}
    assert len(session_ids) == 1 and None not in session_ids


def test_stream_cut_mid_way_raises_after_what_came(make_service, fake, db_url):
    fake.script("app1_chat", ["cut:2"], chunks=5)
    received: list[str] = []
    with pytest.raises(StreamInterrupted) as caught:
        for delta in make_service().stream_chat("你好", site_id=1):
            received.append(delta.text)

    assert len(received) == 2 and caught.value.partial_text == "".join(received)
    assert fake.count() == 1  # text was already shown: no silent retry
    [row] = ledger(db_url)
    assert (row["status"], row["error_code"], row["response_text"]) == ("failed", "StreamCut", "".join(received))


def test_in_stream_throttling_is_classified_by_code_and_retried(make_service, fake):
    # The SDK reports an in-stream error with status 400 whatever the service said; the code rules.
    fake.script("app1_chat", ["stream_error:0:Throttling.RateQuota", "ok"])
    deltas = list(make_service().stream_chat("你好", site_id=1))
    assert deltas[-1].done and fake.count() == 2


def test_in_stream_permanent_code_is_not_retried(make_service, fake):
    fake.script("app1_chat", ["stream_error:0:DataInspectionFailed", "ok"])
    with pytest.raises(PermanentLLMError) as caught:
        list(make_service().stream_chat("你好", site_id=1))
    assert caught.value.code == "DataInspectionFailed" and fake.count() == 1


def test_in_stream_error_after_text_raises_with_the_partial_text(make_service, fake):
    fake.script("app1_chat", ["stream_error:2:InternalError"], chunks=4)
    received: list[str] = []
    with pytest.raises(StreamInterrupted) as caught:
        for delta in make_service().stream_chat("你好", site_id=1):
            received.append(delta.text)
    assert caught.value.code == "InternalError" and caught.value.partial_text == "".join(received) != ""


def test_async_stream_bridges_the_blocking_generator(make_service, fake):
    fake.script("app1_chat", chunks=3)
    service = make_service()

    async def consume() -> list:
        return [delta async for delta in service.astream_chat("你好", site_id=1, session_id="s-1")]

    deltas = asyncio.run(consume())
    assert len(deltas) == 4 and deltas[-1].done and {d.session_id for d in deltas} == {"s-1"}


def test_consumer_leaving_early_keeps_the_partial_answer(make_service, fake, db_url):
    fake.chunk_delay_ms = 20
    fake.script("app1_chat", chunks=6)
    service = make_service()

    async def read_two() -> list:
        stream = service.astream_chat("你好", site_id=1)
        got = [await anext(stream), await anext(stream)]
        await stream.aclose()
        return got

    got = asyncio.run(read_two())
    deadline = time.monotonic() + 3
    while ledger(db_url)[0]["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    [row] = ledger(db_url)
    assert (row["status"], row["error_code"]) == ("failed", "Cancelled")
    assert row["response_text"] == "".join(d.text for d in got)
    assert row["attempts"] == fake.count() == 1  # the request that was sent is counted, as the upstream counts it


def test_offline_chat_streams_without_a_server(make_service, fake, db_url):
    deltas = list(make_service(provider="offline").stream_chat("今天营业额多少？", site_id=1))
    assert "离线" in "".join(d.text for d in deltas) and deltas[-1].done
    assert fake.count() == 0
    assert ledger(db_url)[0]["provider"] == "offline"


def test_refusal_before_the_stream_starts_is_retried(make_service, fake):
    fake.script("app1_chat", ["429", "503", "ok"])
    waits: list[float] = []
    deltas = list(make_service(sleep=waits.append, max_attempts=3).stream_chat("你好", site_id=1))
    assert deltas[-1].done and fake.count() == 3
    assert waits[0] > waits[1]  # Throttling waits longer than a 5xx, even one backoff step earlier
