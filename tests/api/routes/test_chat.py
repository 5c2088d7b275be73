"""The mini-program chat through the real dashscope SDK against the fake DashScope server."""

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import LoginTokenSettings, Settings
from tests.api.conftest import OTHER_SITE, SITE, bearer, put_cache
from tests.api.login_support import SECRET, mint
from zqyy_assets.core import db
from zqyy_assets.core.llm.settings import LLMSettings
from zqyy_assets.core.settings import DatabaseSettings
from zqyy_assets.testing.fake_dashscope import FAKE_API_KEY, FakeDashScope


@pytest.fixture
def fake() -> Iterator[FakeDashScope]:
    with FakeDashScope() as server:
        yield server


@pytest.fixture
def chat_settings(db_url: str, fake: FakeDashScope, monkeypatch: pytest.MonkeyPatch) -> Settings:
    # The LLM layer reads its retry settings from the environment; keep retries quick here.
    monkeypatch.setenv("ZQYY_LLM_RETRY_BASE_DELAY_SECONDS", "0.01")
    monkeypatch.setenv("ZQYY_LLM_RETRY_MAX_DELAY_SECONDS", "0.02")
    return Settings(
        database=DatabaseSettings(database_url=db_url),
        db_pool_min_size=1,
        db_pool_max_size=4,
        llm=LLMSettings(api_key=FAKE_API_KEY, base_url=fake.base_url, app_ids={"app1_chat": "fake-app1_chat"}),
    )


@pytest.fixture
def client(chat_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(chat_settings)) as test_client:
        yield test_client


@pytest.fixture
def api_login_client(chat_settings: Settings) -> Iterator[TestClient]:
    """The chat with the platform's login tokens accepted (HS256), `coach` a staff role."""
    login = LoginTokenSettings(jwt_secret=SECRET, staff_roles="staff,coach")
    with TestClient(create_app(chat_settings.model_copy(update={"login": login}))) as test_client:
        yield test_client


@pytest.fixture
def me(make_token) -> dict[str, str]:
    return bearer(make_token("staff", subject="assistant-1024", nickname="小王"))


def new_chat(client: TestClient, headers: dict[str, str], context: str = "member:7") -> int:
    kind, _, ident = context.partition(":")
    response = client.get(f"/api/xcx/chat/messages?contextType={kind}&contextId={ident}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["chatId"]


def parse_sse(text: str) -> list[tuple[str, dict]]:
    """Frames as (event, data); each frame is `event:` + one `data:` line + a blank line."""
    frames = []
    assert text.endswith("\n\n"), "a stream ends with a complete frame"
    for block in text.split("\n\n")[:-1]:
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        frames.append((lines[0][len("event: ") :], json.loads(lines[1][len("data: ") :])))
    return frames


def stored(db_url: str, chat_id: int) -> list[dict]:
    with db.connect(db_url) as conn:
        return conn.execute(
            "SELECT role, content, status, tokens_used FROM biz.chat_messages WHERE chat_id = %s ORDER BY id",
            (chat_id,),
        ).fetchall()


def test_stream_frames_message_events_then_done(client, fake, me, db_url) -> None:
    fake.script("app1_chat", chunks=5, answer="今天营收比上周高一成，主要来自包厢。")
    chat_id = new_chat(client, me)
    response = client.post("/api/xcx/chat/stream", json={"chatId": chat_id, "content": " 今天营收如何？ "}, headers=me)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    frames = parse_sse(response.text)
    assert [e for e, _ in frames] == ["message"] * 5 + ["done"]
    reply = "".join(d["token"] for _, d in frames[:-1])
    assert reply == "今天营收比上周高一成，主要来自包厢。"
    done = frames[-1][1]
    messages = stored(db_url, chat_id)
    assert [(m["role"], m["content"], m["status"]) for m in messages] == [
        ("user", "今天营收如何？", "complete"),
        ("assistant", reply, "complete"),
    ]
    assert messages[1]["tokens_used"] > 0
    listed = client.get(f"/api/xcx/chat/{chat_id}/messages", headers=me).json()
    assert listed["items"][-1]["id"] == done["messageId"]
    assert listed["items"][-1]["createdAt"][:19] == done["createdAt"][:19]
    (request,) = fake.requests("app1_chat")
    assert request["stream"] and request["incremental_output"] and request["prompt"] == "今天营收如何？"


def test_bailian_session_is_reused_and_last_20_messages_are_the_context(client, fake, me, db_url) -> None:
    chat_id = new_chat(client, me)
    client.post("/api/xcx/chat/stream", json={"chatId": chat_id, "content": "第一个问题"}, headers=me)
    first = fake.requests("app1_chat")[0]
    assert first["session_id"] is None
    with db.connect(db_url) as conn:
        bailian = conn.execute("SELECT bailian_session_id FROM biz.chat_sessions WHERE id = %s", (chat_id,)).fetchone()
    assert bailian["bailian_session_id"]
    with db.transaction(db_url) as conn:  # 30 more turns, so the window has to cut
        for n in range(30):
            conn.execute(
                "INSERT INTO biz.chat_messages (chat_id, role, content) VALUES (%s, %s, %s)",
                (chat_id, "user" if n % 2 == 0 else "assistant", f"旧消息{n:02d}"),
            )
        conn.execute(
            """INSERT INTO biz.chat_messages (chat_id, role, content, status)
               VALUES (%s, 'assistant', '出错提示', 'error')""",
            (chat_id,),
        )
    client.post("/api/xcx/chat/stream", json={"chatId": chat_id, "content": "最新的问题"}, headers=me)
    second = fake.requests("app1_chat")[1]
    assert second["session_id"] == bailian["bailian_session_id"]
    prompt = second["prompt"]
    assert prompt.endswith("[当前问题]\n最新的问题")
    assert "旧消息11" in prompt and "旧消息10" not in prompt  # 19 earlier turns + the question = 20
    assert prompt.count("\n用户: ") + prompt.count("\nAI: ") == 19
    assert "出错提示" not in prompt


def test_page_context_comes_from_cached_answers_and_the_reply_cites_them(client, fake, me, db_url) -> None:
    cache_id = put_cache(
        db_url,
        site=SITE,
        app="app2a_finance_area",
        target="last_month__vip",
        result={"insights": [{"title": "包厢营收下滑12%"}]},
        created_at="2026-11-29T10:00:00+08:00",
    )
    chat_id = new_chat(client, me, "board:finance")
    body = {
        "chatId": chat_id,
        "content": "为什么下滑？",
        "sourcePage": "board-finance",
        "pageContext": {"timeDimension": "last_month", "area": "vip"},
    }
    response = client.post("/api/xcx/chat/stream", json=body, headers=me)
    assert response.status_code == 200
    prompt = fake.requests("app1_chat")[0]["prompt"]
    assert prompt.startswith("[页面上下文: board-finance]")
    assert "包厢营收下滑12%" in prompt and prompt.endswith("为什么下滑？")
    source = {
        "cacheId": cache_id,
        "cacheType": "app2a_finance_area",
        "targetId": "last_month__vip",
        "generatedAt": "2026-11-29T02:00:00Z",
        "title": "财务洞察(区域)",
    }
    card = {**source, "summary": "包厢营收下滑12%", "sourcePage": "board-finance", "sources": [source]}
    event, done = parse_sse(response.text)[-1]
    assert event == "done" and done["referenceCard"] == card
    user, reply = client.get(f"/api/xcx/chat/{chat_id}/messages", headers=me).json()["items"]
    assert user["referenceCard"] is None and reply["referenceCard"] == card


def test_a_member_page_card_names_every_answer_used(client, fake, me, db_url) -> None:
    app7 = put_cache(db_url, site=SITE, app="app7_customer", target="7", result={"summary": "高价值常客，近期到店减少"})
    app8 = put_cache(
        db_url, site=SITE, app="app8_consolidation", target="7", result={"clues": [{"summary": "周末常来"}]}
    )
    put_cache(db_url, site=OTHER_SITE, app="app4_analysis", target="5_7", result={"summary": "另一家店"})
    chat_id = new_chat(client, me, "member:7")
    body = {
        "chatId": chat_id,
        "content": "怎么维护？",
        "sourcePage": "member-detail",
        "pageContext": {"assistantId": 5},
    }
    _, done = parse_sse(client.post("/api/xcx/chat/stream", json=body, headers=me).text)[-1]
    card = done["referenceCard"]
    assert (card["cacheId"], card["cacheType"], card["summary"]) == (app7, "app7_customer", "高价值常客，近期到店减少")
    assert [(s["cacheId"], s["cacheType"], s["targetId"]) for s in card["sources"]] == [
        (app7, "app7_customer", "7"),
        (app8, "app8_consolidation", "7"),
    ]
    # No page context, or nothing cached for it: no card.
    _, plain = parse_sse(
        client.post("/api/xcx/chat/stream", json={"chatId": chat_id, "content": "嗯"}, headers=me).text
    )[-1]
    assert "referenceCard" not in plain
    body = {**body, "pageContext": {"memberId": 8}}
    _, nothing = parse_sse(client.post("/api/xcx/chat/stream", json=body, headers=me).text)[-1]
    assert "referenceCard" not in nothing
    assert [
        m["referenceCard"] is not None
        for m in client.get(f"/api/xcx/chat/{chat_id}/messages", headers=me).json()["items"]
    ] == [False, True, False, False, False, False]


def test_biz_params_name_the_caller_as_the_seed_sent_them(client, fake, me, make_token) -> None:
    chat_id = new_chat(client, me)
    client.post("/api/xcx/chat/stream", json={"chatId": chat_id, "content": "你好"}, headers=me)
    client.post(f"/api/xcx/chat/{chat_id}/messages", json={"content": "再问"}, headers=me)
    expected = {"User_ID": "assistant-1024", "Role": "staff", "Nickname": "小王"}
    assert [r["biz_params"] for r in fake.requests("app1_chat")] == [expected, expected]
    nameless = bearer(make_token("admin", subject="店长"))
    client.post("/api/xcx/chat/stream", json={"chatId": new_chat(client, nameless), "content": "hi"}, headers=nameless)
    assert fake.requests("app1_chat")[-1]["biz_params"] == {"User_ID": "店长", "Role": "admin", "Nickname": ""}


def test_biz_params_from_a_platform_login_token(fake, api_login_client) -> None:
    token = mint(sub="10024", role="coach", nickname="小李")
    headers = bearer(token)
    chat_id = new_chat(api_login_client, headers)
    api_login_client.post("/api/xcx/chat/stream", json={"chatId": chat_id, "content": "你好"}, headers=headers)
    assert fake.requests("app1_chat")[-1]["biz_params"] == {"User_ID": "10024", "Role": "coach", "Nickname": "小李"}
    # The chat is the login user's: the same user id with another token finds it, another user does not.
    again = bearer(mint(sub="10024", role="coach", nickname="小李", iat=1))
    assert new_chat(api_login_client, again) == chat_id
    assert (
        api_login_client.get(f"/api/xcx/chat/{chat_id}/messages", headers=bearer(mint(sub="10025"))).status_code == 403
    )


def test_partial_reply_is_saved_when_the_upstream_cuts_the_stream(client, fake, me, db_url) -> None:
    fake.script("app1_chat", ["cut:2"], chunks=5, answer="一二三四五六七八九十")
    chat_id = new_chat(client, me)
    response = client.post("/api/xcx/chat/stream", json={"chatId": chat_id, "content": "说说"}, headers=me)
    frames = parse_sse(response.text)
    assert [e for e, _ in frames] == ["message", "message", "error"]
    assert frames[-1][1]["message"] == "AI 服务暂时不可用，请稍后再试"
    partial = "".join(d["token"] for _, d in frames[:2])
    assert partial == "一二三四"
    assert [(m["role"], m["content"], m["status"]) for m in stored(db_url, chat_id)] == [
        ("user", "说说", "complete"),
        ("assistant", partial, "partial"),
    ]
    assert fake.count("app1_chat") == 1  # text had been shown: the stream is not retried


def test_upstream_refusal_before_any_text_is_an_error_event(client, fake, me, db_url) -> None:
    fake.script("app1_chat", ["data_inspection"])
    chat_id = new_chat(client, me)
    frames = parse_sse(
        client.post("/api/xcx/chat/stream", json={"chatId": chat_id, "content": "敏感话题"}, headers=me).text
    )
    assert frames == [("error", {"message": "AI 服务暂时不可用，请稍后再试", "code": "DataInspectionFailed"})]
    assert [m["role"] for m in stored(db_url, chat_id)] == ["user"]


def test_sync_send_returns_both_messages(client, fake, me, db_url) -> None:
    fake.script("app1_chat", answer="可以先回访张先生。")
    chat_id = new_chat(client, me)
    response = client.post(f"/api/xcx/chat/{chat_id}/messages", json={"content": "今天先做什么？"}, headers=me)
    assert response.status_code == 200
    body = response.json()
    assert body["userMessage"]["content"] == "今天先做什么？"
    assert body["aiReply"]["content"] == "可以先回访张先生。" and body["aiReply"]["status"] == "complete"
    assert fake.requests("app1_chat")[0]["stream"] is False
    # A failed reply is a notice with HTTP 200, kept out of the next prompt.
    fake.script("app1_chat", ["500", "500", "500"])
    failed = client.post(f"/api/xcx/chat/{chat_id}/messages", json={"content": "再说一次"}, headers=me)
    assert failed.status_code == 200
    assert failed.json()["aiReply"] | {"id": 0, "createdAt": ""} == {
        "id": 0,
        "role": "assistant",
        "content": "AI 服务暂时不可用，请稍后再试",
        "status": "error",
        "createdAt": "",
    }
    assert [m["status"] for m in stored(db_url, chat_id)] == ["complete", "complete", "complete", "error"]


@pytest.mark.parametrize("content", ["", "   ", "\n\t"])
def test_empty_content_is_422(client, me, content) -> None:
    chat_id = new_chat(client, me)
    for path, body in (
        (f"/api/xcx/chat/{chat_id}/messages", {"content": content}),
        ("/api/xcx/chat/stream", {"chatId": chat_id, "content": content}),
    ):
        response = client.post(path, json=body, headers=me)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"][-1] == "content"
        assert "消息内容不能为空" in response.json()["detail"][0]["msg"]


def test_someone_elses_chat_is_403_and_a_missing_one_404(client, fake, me, make_token) -> None:
    chat_id = new_chat(client, me)
    colleague = bearer(make_token("staff", subject="assistant-2048"))
    boss = bearer(make_token("admin", subject="店长"))
    for headers in (colleague, boss):
        assert client.get(f"/api/xcx/chat/{chat_id}/messages", headers=headers).status_code == 403
        assert (
            client.post(f"/api/xcx/chat/{chat_id}/messages", json={"content": "hi"}, headers=headers).status_code == 403
        )
        response = client.post("/api/xcx/chat/stream", json={"chatId": chat_id, "content": "hi"}, headers=headers)
        assert response.status_code == 403 and response.json() == {"detail": "无权访问该对话"}
    assert client.get("/api/xcx/chat/999999/messages", headers=me).json() == {"detail": "对话不存在"}
    assert fake.count() == 0


def test_context_finds_or_creates_and_history_lists_own_chats(client, fake, me, make_token) -> None:
    a = new_chat(client, me, "member:7")
    assert new_chat(client, me, "member:7") == a
    b = new_chat(client, me, "member:8")
    assert b != a
    other = bearer(make_token("staff", subject="assistant-2048"))
    assert new_chat(client, other, "member:7") not in (a, b)
    client.post(f"/api/xcx/chat/{a}/messages", json={"content": "张先生最近怎么样？"}, headers=me)
    history = client.get("/api/xcx/chat/history", headers=me).json()
    assert [item["id"] for item in history["items"]] == [a, b]
    assert history["items"][0]["title"] == "张先生最近怎么样？" and history["items"][0]["messageCount"] == 2
    assert history["items"][0]["contextType"] == "member" and history["items"][0]["contextId"] == "7"
    two_sites = bearer(make_token("staff", sites=(SITE, OTHER_SITE), subject="assistant-1024"))
    assert client.get(f"/api/xcx/chat/history?site_id={OTHER_SITE}", headers=two_sites).json()["total"] == 0
