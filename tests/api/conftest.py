from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings


@pytest.fixture
def api_settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, db_pool_min_size=1, db_pool_max_size=4)


@pytest.fixture
def client(api_settings: Settings) -> Iterator[TestClient]:
    """A fresh app on a fresh database: no shared live state between tests."""
    with TestClient(create_app(api_settings)) as test_client:
        yield test_client
