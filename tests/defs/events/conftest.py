"""Fixtures for the events tests: a Dagster instance, the project database as a resource, and
a helper that inserts inbox events the way producers do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from functools import cache

import dagster as dg
import pytest

from tests.defs.dws.small_venue import load_small_venue
from zqyy_assets.core import db, inbox
from zqyy_assets.definitions import defs
from zqyy_assets.defs.events.sensors import ai_events_sensor
from zqyy_assets.defs.resources import PostgresResource

# A moment of business date 2026-03-03 in Asia/Shanghai (the business day turns at 06:00).
MORNING = datetime.fromisoformat("2026-03-03T10:00:00+08:00")


@cache
def code_location() -> dg.Definitions:
    """The definitions as Dagster loads them (settings from this process's environment)."""
    return defs()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def postgres(db_url: str) -> PostgresResource:
    return PostgresResource(database_url=db_url)


@pytest.fixture
def venue(db_url: str) -> str:
    with db.transaction(db_url) as conn:
        load_small_venue(conn)
    return db_url


@pytest.fixture
def add_event(db_url: str) -> Callable[..., int]:
    def add(event_type: str, site_id: int = 1, member_id: int | None = 100, **kwargs) -> int:
        kwargs.setdefault("occurred_at", MORNING)
        kwargs.setdefault("timezone", "Asia/Shanghai")
        kwargs.setdefault("cutoff_hours", 6)
        with db.transaction(db_url) as conn:
            event_id = inbox.insert_event(conn, event_type=event_type, site_id=site_id, member_id=member_id, **kwargs)
        assert event_id is not None
        return event_id

    return add


def tick(instance: dg.DagsterInstance, postgres: PostgresResource, cursor: str | None = None):
    """One evaluation as the daemon does it: run requests resolved against the definitions."""
    # With instance_ref, partition keys resolve against the instance's dynamic partitions after
    # the tick's own add requests, as in the code server.
    with dg.build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref(),
        cursor=cursor,
        definitions=code_location(),
        resources={"postgres": postgres},
    ) as context:
        return ai_events_sensor.evaluate_tick(context)


def event_row(db_url: str, event_id: int) -> dict:
    with db.connect(db_url) as conn:
        return conn.execute("SELECT * FROM biz.ai_events WHERE id = %s", (event_id,)).fetchone()
