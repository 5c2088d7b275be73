"""The chat stream's SSE framing with a slow upstream: keep-alive comments while the model is
silent, and a client that leaves mid-answer (the upstream call stops, the partial reply stays)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.api.conftest import bearer
from tests.api.realtime_support import api_in_thread, wait_until
from tests.api.routes.test_chat import new_chat, parse_sse, stored
from zqyy_assets.core import db
from zqyy_assets.core.llm.settings import LLMSettings
from zqyy_assets.core.settings import DatabaseSettings
from zqyy_assets.testing.fake_dashscope import FAKE_API_KEY, FakeDashScope

ANSWER = "".join(f"{n:02d}" for n in range(40))  # 40 chunks of two characters
PING_S = 0.2


@pytest.fixture
def slow_fake() -> Iterator[FakeDashScope]:
    with FakeDashScope(chunk_delay_ms=250) as server:
        yield server


@pytest.fixture
def sse_settings(db_url: str, slow_fake: FakeDashScope) -> Settings:
    return Settings(
        database=DatabaseSettings(database_url=db_url),
        db_pool_min_size=1,
        db_pool_max_size=4,
        chat_sse_ping_s=PING_S,
        llm=LLMSettings(api_key=FAKE_API_KEY, base_url=slow_fake.base_url, app_ids={"app1_chat": "fake-app1_chat"}),
    )


@pytest.fixture
def me(make_token) -> dict[str, str]:
    return bearer(make_token("staff", subject="assistant-1024"))


def _without_comments(text: str) -> tuple[str, list[str]]:
    """The stream's frames, and the comment blocks that were between them."""
    blocks = text.split("\n\n")
    comments = [b for b in blocks if b.startswith(":")]
    return "\n\n".join(b for b in blocks if not b.startswith(":")), comments


def test_keep_alive_comments_while_the_model_is_silent_then_the_same_events(
    sse_settings: Settings, slow_fake: FakeDashScope, me, db_url
) -> None:
    # The model thinks 1.5 s before its first word: a comment every 0.2 s meanwhile.
    slow_fake.script("app1_chat", latency_ms=1500, chunks=2, answer="先回访张先生。")
    with TestClient(create_app(sse_settings)) as client:
        chat_id = new_chat(client, me)
        response = client.post(
            "/api/xcx/chat/stream", json={"chatId": chat_id, "content": "今天先做什么？"}, headers=me
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    frames_text, comments = _without_comments(response.text)
    assert response.text.startswith(": ping\n\n")  # before any event
    assert len(comments) >= 2 and set(comments) == {": ping"}
    frames = parse_sse(frames_text)
    assert [e for e, _ in frames] == ["message", "message", "done"]
    assert "".join(d["token"] for _, d in frames[:-1]) == "先回访张先生。"
    assert set(frames[-1][1]) == {"messageId", "createdAt"}
    assert stored(db_url, chat_id)[-1]["status"] == "complete"


def test_a_client_that_leaves_stops_the_upstream_call_and_keeps_the_partial_reply(
    sse_settings: Settings, slow_fake: FakeDashScope, me, db_url
) -> None:
    slow_fake.script("app1_chat", chunks=len(ANSWER) // 2, answer=ANSWER)  # ~10 s of stream
    with api_in_thread(sse_settings) as (ws_url, _app):
        base = ws_url.replace("ws://", "http://")
        with httpx.Client(base_url=base, headers=me, timeout=30) as client:
            chat_id = client.get("/api/xcx/chat/messages", params={"contextType": "member", "contextId": "7"}).json()[
                "chatId"
            ]
            received = []
            with client.stream("POST", "/api/xcx/chat/stream", json={"chatId": chat_id, "content": "说说"}) as stream:
                for line in stream.iter_lines():
                    if line.startswith("data: "):
                        received.append(line)
                    if len(received) == 2:
                        break  # the client leaves after two tokens
        # The reply as it was when the client left is saved, status partial.
        replies = wait_until(
            lambda: [m for m in stored(db_url, chat_id) if m["role"] == "assistant"], 15, "the partial reply"
        )
        # The upstream call was stopped: its ledger row ends as cancelled, long before the answer's end.
        call = wait_until(lambda: _finished_call(db_url), 15, "the call's ledger row to end")
    [reply] = replies
    assert reply["status"] == "partial"
    assert ANSWER.startswith(reply["content"]) and reply["content"].startswith("0001")
    assert (call["status"], call["error_code"]) == ("failed", "Cancelled")
    assert ANSWER.startswith(call["response_text"]) and len(call["response_text"]) < len(ANSWER) // 2


def _finished_call(db_url: str) -> dict | None:
    with db.connect(db_url) as conn:
        return conn.execute(
            """SELECT status, error_code, response_text FROM biz.ai_call_ledger
               WHERE app_name = 'app1_chat' AND status <> 'running'"""
        ).fetchone()
