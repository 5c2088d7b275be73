"""An alert raised on an API call path: the chat's LLM call fails, the admin lists the alert."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from tests.api.conftest import SITE, bearer
from zqyy_assets.core.llm.settings import LLMSettings
from zqyy_assets.core.settings import DatabaseSettings
from zqyy_assets.testing.fake_dashscope import FAKE_API_KEY, FakeDashScope


@pytest.fixture
def fake() -> Iterator[FakeDashScope]:
    with FakeDashScope() as server:
        yield server


@pytest.fixture
def client(db_url: str, fake: FakeDashScope) -> Iterator[TestClient]:
    settings = Settings(
        database=DatabaseSettings(database_url=db_url),
        db_pool_min_size=1,
        db_pool_max_size=4,
        llm=LLMSettings(
            api_key=FAKE_API_KEY,
            base_url=fake.base_url,
            app_ids={"app1_chat": "fake-app1_chat"},
            retry_base_delay_seconds=0.01,
            retry_max_delay_seconds=0.02,
        ),
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_a_failed_chat_call_is_listed_and_on_the_dashboard(client, fake, make_token) -> None:
    me, admin = bearer(make_token("staff", subject="assistant-1")), bearer(make_token("admin"))
    fake.script("app1_chat", ["data_inspection", "data_inspection"])
    chat_id = client.get("/api/xcx/chat/messages?contextType=member&contextId=7", headers=me).json()["chatId"]
    for _ in range(2):
        client.post(f"/api/xcx/chat/{chat_id}/messages", json={"content": "敏感话题"}, headers=me)

    [alert] = client.get(f"/api/admin/ai/alerts?site_id={SITE}&alert_status=pending", headers=admin).json()["items"]
    assert (alert["app_type"], alert["status"], alert["site_id"], alert["occurrences"]) == (
        "app1_chat",
        "failed",
        SITE,
        2,
    )
    assert "DataInspectionFailed" in alert["error_message"]
    log = client.get(f"/api/admin/ai/run-logs/{alert['log_id']}", headers=admin).json()
    assert (log["app_type"], log["status"]) == ("app1_chat", "failed")
    dashboard = client.get("/api/admin/ai/dashboard", headers=admin).json()
    assert [a["id"] for a in dashboard["recent_alerts"]] == [alert["id"]]
