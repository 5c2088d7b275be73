"""The API worker's collector settings (api/collector.py) hold while the app serves, and are undone."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient

from api.collector import FULL_COLLECTION_EVERY
from api.main import create_app


def test_the_served_app_freezes_its_startup_heap_and_spaces_out_full_collections(api_settings) -> None:
    before = gc.get_threshold()
    assert before[2] != FULL_COLLECTION_EVERY
    with TestClient(create_app(api_settings)) as client:
        assert client.get("/api/health").status_code == 200
        assert gc.get_threshold() == (before[0], before[1], FULL_COLLECTION_EVERY)
        assert gc.get_freeze_count() > 10_000  # the routes, models and services built at startup
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
