"""The chat with no model key: the offline analyst quotes the question (never the page-context
block the service prepends) and answers from the page's cached answers, streamed and sent alike."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.api.conftest import SITE, bearer, put_cache
from tests.api.routes.test_chat import new_chat, parse_sse
from zqyy_assets.core.llm.settings import LLMSettings
from zqyy_assets.core.settings import DatabaseSettings

QUESTION = "本月营业额怎么样？"
INSIGHTS = [
    {"title": "营收环比增长12%", "content": "本月营收¥910,792.83，较上月增长12%。包厢贡献最多。"},
    {"title": "包厢占比过半", "content": "包厢营收占全店的52%。"},
    {"title": "散台客单价下降", "content": "散台客单价较上月下降8%。"},
    {"title": "第四条不必复述", "content": "略。"},
]


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database=DatabaseSettings(database_url=db_url),
        db_pool_min_size=1,
        db_pool_max_size=4,
        llm=LLMSettings(provider="offline"),
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def me(make_token) -> dict[str, str]:
    return bearer(make_token("staff", subject="assistant-1024", nickname="小王"))


def streamed(client: TestClient, me: dict[str, str], body: dict) -> str:
    response = client.post("/api/xcx/chat/stream", json=body, headers=me)
    assert response.status_code == 200, response.text
    frames = parse_sse(response.text)
    assert frames[-1][0] == "done"
    tokens = [data["token"] for event, data in frames if event == "message"]
    assert len(tokens) > 3, "the reply comes in several chunks"
    return "".join(tokens)


def test_finance_board_question_gets_the_gist_of_the_cached_insights(client, me, db_url) -> None:
    put_cache(db_url, site=SITE, app="app2_finance", target="this_month__all", result={"insights": INSIGHTS})
    chat_id = new_chat(client, me, "board:finance")
    body = {
        "chatId": chat_id,
        "content": QUESTION,
        "sourcePage": "board-finance",
        "pageContext": {"timeDimension": "this_month", "area": "all"},
    }
    reply = streamed(client, me, body)
    assert f"「{QUESTION}」" in reply
    assert "页面上下文" not in reply and "app2_finance" not in reply and "{" not in reply
    assert "离线分析助手" in reply and "密钥" in reply
    assert "营收环比增长12%：本月营收¥910,792.83，较上月增长12%。" in reply
    assert "包厢占比过半" in reply and "散台客单价下降" in reply
    assert "第四条不必复述" not in reply and "包厢贡献最多" not in reply  # three insights, first sentences
    assert len(reply) <= 600
    stored = client.get(f"/api/xcx/chat/{chat_id}/messages", headers=me).json()["items"][-1]
    assert stored["content"] == reply and stored["status"] == "complete"


def test_member_page_question_gets_the_members_clues_and_analysis(client, me, db_url) -> None:
    put_cache(
        db_url,
        site=SITE,
        app="app7_customer",
        target="7",
        result={"segment": "高价值常客", "summary": "近90天到店18次。近期到店减少。", "suggestions": ["周末前回访"]},
    )
    clues = [
        {"category": "消费习惯", "summary": "周末晚上常来"},
        {"category": "玩法偏好", "summary": "偏爱包厢九球"},
    ]
    put_cache(db_url, site=SITE, app="app8_consolidation", target="7", result={"clues": clues})
    chat_id = new_chat(client, me, "member:7")
    body = {"chatId": chat_id, "content": "怎么维护这位会员？", "sourcePage": "member-detail", "pageContext": {}}
    reply = streamed(client, me, body)
    assert "「怎么维护这位会员？」" in reply and "离线分析助手" in reply
    assert "高价值常客：近90天到店18次。" in reply and "建议：周末前回访" in reply
    assert "消费习惯：周末晚上常来" in reply and "玩法偏好：偏爱包厢九球" in reply
    assert "{" not in reply and len(reply) <= 600


def test_no_page_context_gets_guidance_streamed_and_sent(client, me, db_url) -> None:
    chat_id = new_chat(client, me, "home:")
    reply = streamed(client, me, {"chatId": chat_id, "content": "你能做什么？"})
    assert "「你能做什么？」" in reply and "离线分析助手" in reply
    assert "财务看板" in reply and "会员详情页" in reply
    # The sync send, a later turn: its prompt carries the dialogue, only the question is quoted.
    response = client.post(f"/api/xcx/chat/{chat_id}/messages", json={"content": QUESTION}, headers=me)
    assert response.status_code == 200, response.text
    sent = response.json()["aiReply"]
    assert sent["status"] == "complete" and sent["content"].count("「") == 1
    assert f"「{QUESTION}」" in sent["content"] and "历史对话" not in sent["content"]
    assert "你能做什么" not in sent["content"] and "财务看板" in sent["content"]
