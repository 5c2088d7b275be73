"""Bounded member partitions: the daily retirement deletes keys whose member had no event in the
retention window; a retired member's next event adds the key back and its chain runs as usual;
the answers cached for a retired key stay and the API serves them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.main import create_app
from api.settings import Settings
from tests.defs.ai.conftest import FAST_LLM, cache_rows
from tests.defs.ai.venue import load_ai_venue
from tests.defs.events.conftest import MORNING, code_location, tick
from zqyy_assets.core import db, member_keys
from zqyy_assets.core import tokens as token_store
from zqyy_assets.core.settings import DatabaseSettings
from zqyy_assets.core.tags import MAX_RUNTIME_TAG
from zqyy_assets.defs.ai.assets import ai_assets
from zqyy_assets.defs.ai.jobs import ai_jobs
from zqyy_assets.defs.ai.resources import LLMResource
from zqyy_assets.defs.events import retirement
from zqyy_assets.defs.events.retirement import MemberPartitionsResource, retire_member_partitions_job
from zqyy_assets.defs.ods.assets import ods_assets
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource
from zqyy_assets.testing.fake_dashscope import FakeDashScope


def age_events(db_url: str, days: float, *event_ids: int) -> None:
    """Make the events look ``days`` old to the retirement (it reads their insert time)."""
    with db.transaction(db_url) as conn:
        conn.execute(
            "UPDATE biz.ai_events SET created_at = now() - make_interval(secs => %s) WHERE id = ANY(%s)",
            (days * 86400, list(event_ids)),
        )


def retire(instance: dg.DagsterInstance, postgres: PostgresResource, days: int = 90) -> dict[str, object]:
    result = retire_member_partitions_job.execute_in_process(
        instance=instance,
        resources={"postgres": postgres, "member_partitions": MemberPartitionsResource(retention_days=days)},
    )
    assert result.success
    [output] = [e for e in result.all_node_events if e.is_successful_output]
    return {k: v.value for k, v in output.step_output_data.metadata.items()}


@pytest.mark.parametrize("page", [retirement.PAGE, 2])  # 2: deleting while paging skips nothing
def test_keys_quiet_for_the_retention_are_retired_and_counted(
    instance, postgres, db_url, add_event, monkeypatch, page
) -> None:
    monkeypatch.setattr(retirement, "PAGE", page)
    recent = add_event("consumption", member_id=100)
    old = add_event("consumption", member_id=101)
    border = add_event("note_created", member_id=103)
    other_site = add_event("consumption", site_id=2, member_id=101)
    age_events(db_url, 89, border)
    age_events(db_url, 91, old)
    instance.add_dynamic_partitions("members", ["1-100", "1-101", "1-102", "legacy", "1-103", "2-101"])
    instance.add_dynamic_partitions("assistant_members", ["1-7_100", "1-7_101", "2-7_101"])
    assert recent and other_site

    metadata = retire(instance, postgres)

    # 1-101: last event 91 days ago; 1-102: never an event; "legacy" is not a member key: kept.
    assert instance.get_dynamic_partitions("members") == ["1-100", "legacy", "1-103", "2-101"]
    assert instance.get_dynamic_partitions("assistant_members") == ["1-7_100", "2-7_101"]
    assert metadata["members_retired"] == 2 and metadata["members_kept"] == 4
    assert metadata["members_unrecognised"] == 1
    assert (metadata["assistant_members_retired"], metadata["assistant_members_kept"]) == (1, 2)
    assert metadata["retention_days"] == 90

    # The retention is a setting: 30 days retires the member quiet for 89.
    assert retire(instance, postgres, days=30)["members_retired"] == 1
    assert "1-103" not in instance.get_dynamic_partitions("members")


def test_a_retention_below_one_day_is_refused_naming_the_variable(instance, postgres, monkeypatch) -> None:
    with pytest.raises(ValidationError, match="MEMBER_PARTITION_RETENTION_DAYS"):
        MemberPartitionsResource(retention_days=0).settings()
    monkeypatch.setenv("MEMBER_PARTITION_RETENTION_DAYS", "-1")
    with pytest.raises(ValidationError, match="MEMBER_PARTITION_RETENTION_DAYS"):
        code_location.__wrapped__()  # the code location refuses to load


def test_the_code_location_binds_the_retention_and_schedules_the_job_daily(monkeypatch) -> None:
    monkeypatch.setenv("MEMBER_PARTITION_RETENTION_DAYS", "30")
    monkeypatch.setenv("VENUE_TIMEZONE", "Asia/Kuala_Lumpur")
    defs = code_location.__wrapped__()

    schedule = defs.resolve_schedule_def("member_partitions_retirement_schedule")
    assert (schedule.job_name, schedule.cron_schedule, schedule.execution_timezone) == (
        "retire_member_partitions_job",
        "0 5 * * *",
        "Asia/Kuala_Lumpur",
    )
    assert defs.resolve_job_def("retire_member_partitions_job").tags[MAX_RUNTIME_TAG] == str(4 * 3600)
    bound = defs.resources["member_partitions"]
    assert isinstance(bound, MemberPartitionsResource)
    assert bound.retention_days == dg.EnvVar.int("MEMBER_PARTITION_RETENTION_DAYS")


def test_the_sensor_never_loads_the_whole_key_set(instance, postgres, add_event, monkeypatch) -> None:
    instance.add_dynamic_partitions("members", ["1-100"])

    def whole_set(*args, **kwargs):
        raise AssertionError("the inbox sensor loaded every key")

    monkeypatch.setattr(type(instance), "get_dynamic_partitions", whole_set)
    known, new = add_event("consumption", member_id=100), add_event("consumption", member_id=101)

    result = tick(instance, postgres)

    assert {r.run_key: r.partition_key for r in result.run_requests} == {
        f"ev{known}:consumption": "1-100",
        f"ev{new}:consumption": "1-101",
    }
    [added] = result.dynamic_partitions_requests
    assert set(added.partition_keys) == {"1-100", "1-101"}  # adding a present key is a no-op


def test_a_retirement_page_waits_for_a_planning_tick_to_commit(db_url) -> None:
    """The sensor holds the planning lock until it commits; the retirement judges a page only
    under the lock, so it sees the events the tick planned from."""
    with db.transaction(db_url) as sensor_conn:
        member_keys.hold_planning_lock(sensor_conn)
        with db.connect(db_url, autocommit=True) as other:
            other.execute("SET lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable), other.transaction():
                member_keys.hold_retirement_lock(other)
    with db.transaction(db_url) as conn:  # released at the sensor's commit
        member_keys.hold_retirement_lock(conn)


@pytest.fixture
def fake() -> Iterator[FakeDashScope]:
    with FakeDashScope() as server:
        yield server


def test_a_retired_member_is_served_from_cache_and_its_next_event_runs_as_usual(
    instance, postgres, db_url, add_event, fake
) -> None:
    with db.transaction(db_url) as conn:
        load_ai_venue(conn)
    resources = {
        "postgres": postgres,
        "venue_calendar": VenueCalendarResource(),
        "llm": LLMResource(**{**FAST_LLM, "database_url": db_url, "base_url": fake.base_url}),
    }

    def run_as_daemon(result) -> dg.ExecuteInProcessResult:
        """What the daemon does with a tick's result: add the keys, then run the requested chain."""
        for request in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        [request] = result.run_requests
        defs = dg.Definitions(assets=[*ods_assets, *ai_assets], jobs=ai_jobs, resources=resources)
        job = defs.resolve_job_def(request.job_name)
        return job.execute_in_process(instance=instance, partition_key=request.partition_key, tags=request.tags)

    first = add_event("consumption", member_id=100)
    first_tick = tick(instance, postgres)
    assert run_as_daemon(first_tick).success
    answered = {r["cache_type"]: r["id"] for r in cache_rows(db_url)}
    assert set(answered) == {"app3_clue", "app8_consolidation", "app7_customer"}

    age_events(db_url, 120, first)
    assert retire(instance, postgres)["members_retired"] == 1
    assert instance.get_dynamic_partitions("members") == []

    # The answers stay, and the API serves them.
    assert {r["cache_type"]: r["id"] for r in cache_rows(db_url)} == answered
    settings = Settings(
        database=DatabaseSettings(database_url=db_url), dagster_graphql_url="http://127.0.0.1:9/graphql"
    )
    with db.transaction(db_url) as conn:
        token = token_store.issue(conn, subject="staff-1", role="staff", site_ids=[1]).token
    with TestClient(create_app(settings)) as client:
        served = client.get("/api/ai/cache/app7_customer/100?site_id=1", headers={"Authorization": f"Bearer {token}"})
    assert served.status_code == 200 and served.json()["id"] == answered["app7_customer"]

    # The member comes back: the key is new again, added by the tick, and the chain runs.
    back = add_event("consumption", member_id=100, occurred_at=MORNING + timedelta(days=120))
    back_tick = tick(instance, postgres, first_tick.cursor)
    assert [r.run_key for r in back_tick.run_requests] == [f"ev{back}:consumption"]
    assert back_tick.run_requests[0].partition_key == "1-100"
    assert [list(r.partition_keys) for r in back_tick.dynamic_partitions_requests] == [["1-100"]]
    again = run_as_daemon(back_tick)
    assert again.success
    assert instance.get_dynamic_partitions("members") == ["1-100"]
    materialized = {e.asset_key.to_user_string() for e in again.get_asset_materialization_events()}
    assert materialized == {"app3_clue", "app8_consolidation", "app7_customer"}
