"""A failed app does not stop the chain's other apps; every cached answer carries ``_references``."""

import json
from datetime import datetime
from typing import Any

import dagster as dg
from dagster._core.storage.partition_status_cache import get_and_update_asset_status_cache_value

from tests.defs.ai.conftest import cache_rows
from tests.defs.ai.test_member_assets import _instance, _materialized, _run_job, metadata_of_partition
from tests.defs.events.conftest import event_row, tick
from zqyy_assets.core import db, inbox
from zqyy_assets.core.tags import RUN_KEY_TAG, SENSOR_NAME_TAG
from zqyy_assets.defs.ai.partitions import members_partitions
from zqyy_assets.defs.events.status_sensors import (
    ai_event_status_sensor,
    ai_run_failure_alert_sensor,
    run_error_summary,
)
from zqyy_assets.defs.resources import PostgresResource

CONSUMPTION = {"zqyy/trigger": "consumption"}


def _refs(row: dict) -> dict[str, Any]:
    return row["result_json"]["_references"]


def _source(row: dict) -> dict[str, Any]:
    """How an answer that used ``row`` names it in its ``sources``."""
    return {
        "app": row["cache_type"],
        "target_id": row["target_id"],
        "cache_id": row["id"],
        "generated_at": row["created_at"].isoformat(),
    }


def _tables(row: dict) -> dict[str, int]:
    return {t["table"]: t["rows"] for t in _refs(row)["tables"]}


def test_app8_and_app7_carry_on_past_a_failed_app3(venue, resources, fake) -> None:
    instance = _instance(["1-100"])
    first = _run_job("consumption_chain_job", resources, instance, "1-100", tags=CONSUMPTION)
    assert first.success
    [good_app3] = cache_rows(venue, "app3_clue")

    # App3 refused (a permanent error: no step retry), App8 and App7 asked again (forced).
    fake.script("app3_clue", ["401"])
    result = _run_job("consumption_chain_job", resources, instance, "1-100", tags={**CONSUMPTION, "zqyy/force": "true"})

    assert not result.success  # the run ends failed, naming App3
    failure = result.failure_data_for_node("member_apps")
    assert "Failure: app3_clue: 1 of 1 target(s) failed: 1-100: " in failure.error.message
    assert "InvalidApiKey" in failure.error.message
    assert failure.user_failure_data.metadata["app_name"].value == "app3_clue"
    summary = run_error_summary(instance, result.run_id)
    assert summary is not None and summary.startswith("member_apps: ")
    assert "app3_clue: 1 of 1 target(s) failed: 1-100" in summary

    # App8 and App7 ran and are cached; App3 is not materialized (the UI shows it failed).
    assert _materialized(result) == {"app8_consolidation": {"1-100"}, "app7_customer": {"1-100"}}
    for app in ("app8_consolidation", "app7_customer"):
        md = metadata_of_partition(result, app, "1-100")
        assert (md["status"], md["calls"], md["upstream_failed"]) == ("answered", 1, "app3_clue")
    assert cache_rows(venue, "app3_clue") == [good_app3]
    for app, failed in (("app3_clue", {"1-100"}), ("app8_consolidation", set()), ("app7_customer", set())):
        status = get_and_update_asset_status_cache_value(instance, dg.AssetKey(app), members_partitions)
        assert status is not None
        assert set(status.deserialize_failed_partition_subsets(members_partitions).get_partition_keys()) == failed
    app8_rows, app7_rows = cache_rows(venue, "app8_consolidation"), cache_rows(venue, "app7_customer")
    assert len(app8_rows) == len(app7_rows) == 2

    # App8 consolidated the member's last good App3 clues, and says which answer they came from.
    [_, app8_request] = fake.requests("app8_consolidation")
    assert f'"app3_clues":{_clues_json(good_app3)}' in app8_request["prompt"]
    assert _refs(app8_rows[-1])["sources"] == [_source(good_app3)]
    assert _refs(app7_rows[-1])["sources"] == [_source(app8_rows[-1])]  # App7 read the new App8 answer


def _clues_json(row: dict) -> str:
    keep = ("category", "emoji", "summary", "detail", "providers")
    clues = [{k: c[k] for k in keep if k in c} for c in row["result_json"]["clues"]]
    return json.dumps(clues, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def test_a_step_without_its_required_input_is_skipped_saying_why(venue, resources, fake) -> None:
    # Member 101 has visits but no note and no earlier answers: with App3 failing, App8 has no
    # clues at all (skipped, saying why); App7 needs only the visits, so it still answers.
    fake.script("app3_clue", ["401"])
    result = _run_job("consumption_chain_job", resources, _instance(["1-101"]), "1-101", tags=CONSUMPTION)
    assert not result.success
    skipped = metadata_of_partition(result, "app8_consolidation", "1-101")
    assert (skipped["status"], skipped["calls"], skipped["upstream_failed"]) == ("skipped", 0, "app3_clue")
    assert skipped["skip_reason"] == "neither App3 nor App6 has clues for the member (app3_clue failed in this run)"
    assert metadata_of_partition(result, "app7_customer", "1-101")["status"] == "answered"
    assert fake.count("app8_consolidation") == 0 and len(cache_rows(venue, "app7_customer")) == 1


def test_the_event_and_its_alert_name_the_failed_app(venue, resources, fake, db_url) -> None:
    """The inbox event (the trigger job) rolls up to failed naming App3, the alert is App3's,
    and the answers App8 and App7 gave are cached."""
    with db.transaction(db_url) as conn:
        event_id = inbox.insert_event(
            conn,
            event_type="consumption",
            site_id=1,
            member_id=100,
            occurred_at=datetime.fromisoformat("2026-03-03T10:00:00+08:00"),
            timezone="Asia/Shanghai",
            cutoff_hours=6,
        )
    postgres = PostgresResource(database_url=db_url)
    with dg.instance_for_test() as instance:
        [request] = tick(instance, postgres).run_requests
        instance.add_dynamic_partitions("members", ["1-100"])
        # An earlier App3 answer for App8 to fall back on.
        assert _run_job("consumption_chain_job", resources, instance, "1-100", tags=CONSUMPTION).success
        fake.script("app3_clue", ["401"])
        run = _run_job(
            request.job_name,
            resources,
            instance,
            request.partition_key,
            tags={
                **request.tags,
                RUN_KEY_TAG: request.run_key,
                SENSOR_NAME_TAG: "ai_events_sensor",
                "zqyy/force": "true",
            },
        )
        assert not run.success
        with dg.build_sensor_context(instance=instance, resources={"postgres": postgres}) as context:
            ai_event_status_sensor.evaluate_tick(context)
        row = event_row(db_url, event_id)
        assert row["status"] == "failed" and row["dagster_run_ids"] == [run.run_id]
        assert "app3_clue: 1 of 1 target(s) failed" in row["error_message"]

        alert_context = dg.build_run_status_sensor_context(
            sensor_name="ai_run_failure_alert_sensor",
            dagster_event=run.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=run.dagster_run,
            resources={"postgres": postgres},
        ).for_run_failure()
        ai_run_failure_alert_sensor(alert_context)
    with db.connect(db_url) as conn:
        [alert] = conn.execute("SELECT app_type, error_message FROM biz.ai_alerts").fetchall()
    assert alert["app_type"] == "app3_clue" and "InvalidApiKey" in alert["error_message"]
    assert [r["dagster_run_id"] for r in cache_rows(venue, "app8_consolidation")][-1] == run.run_id
    assert [r["dagster_run_id"] for r in cache_rows(venue, "app7_customer")][-1] == run.run_id


def test_references_of_the_member_apps(venue, resources, fake) -> None:
    instance = _instance(["1-100"], ["1-7_100"])
    fake.script("app3_clue", answer={"clues": [{"category": "消费习惯", "summary": "周末晚上"}], "_references": "x"})
    assert _run_job("note_chain_job", resources, instance, "1-100", tags={"zqyy/trigger": "note_created"}).success
    assert _run_job("consumption_chain_job", resources, instance, "1-100", tags=CONSUMPTION).success
    assert _run_job("task_chain_job", resources, instance, "1-7_100", tags={"zqyy/trigger": "task_assigned"}).success
    [app6] = cache_rows(venue, "app6_note")
    [app3] = cache_rows(venue, "app3_clue")
    note_app8, consumption_app8 = cache_rows(venue, "app8_consolidation")
    [app7] = cache_rows(venue, "app7_customer")
    [app4] = cache_rows(venue, "app4_analysis")
    [app5] = cache_rows(venue, "app5_tactics")
    member = {"site_id": 1, "member_id": 100, "as_of_date": "2026-03-03"}

    # App3: the member's own figures, counted by table; the model's own "_references" is dropped.
    assert _refs(app3) == {**member, "tables": _refs(app3)["tables"], "sources": []}
    assert _tables(app3) == {
        "ods.members": 1,
        "dws.member_profile": 1,
        "ods.settlements": 2,  # the venue's two visits of member 100
        "ods.recharges": 0,
        "dws.assistant_member": 1,
    }
    assert _refs(app6) == {
        **member,
        "note_id": 2,
        "tables": [
            {"table": "ods.members", "rows": 1},
            {"table": "dws.member_profile", "rows": 1},
            {"table": "ods.notes", "rows": 2},
        ],
        "sources": [],
    }
    # App8 after the note: App6's answer only (no App3 answer yet); after the consumption: both.
    assert _refs(note_app8)["sources"] == [_source(app6)]
    assert _refs(consumption_app8)["sources"] == [_source(app3), _source(app6)]
    assert _tables(consumption_app8) == {"ods.members": 1, "dws.member_profile": 1, "biz.member_retention_clue": 0}
    assert {k: _refs(consumption_app8)[k] for k in member} == member
    # App7: its own figures (App3's) and the consolidated clues it read.
    assert _refs(app7)["sources"] == [_source(consumption_app8)] and _tables(app7) == _tables(app3)
    pair = {"site_id": 1, "assistant_id": 7, "member_id": 100, "as_of_date": "2026-03-03"}
    assert {k: _refs(app4)[k] for k in pair} == pair and _refs(app4)["sources"] == []
    assert _tables(app4)["ods.tasks"] == 1 and _tables(app4)["ods.assistant_services"] >= 1
    assert {k: _refs(app5)[k] for k in pair} == pair and _refs(app5)["sources"] == [_source(app4)]


def test_app5_carries_on_past_a_failed_app4_with_its_last_good_analysis(venue, resources, fake) -> None:
    instance = _instance(assistant_members=["1-7_100"])
    task = {"zqyy/trigger": "task_assigned"}
    assert _run_job("task_chain_job", resources, instance, "1-7_100", tags=task).success
    [good_app4] = cache_rows(venue, "app4_analysis")

    fake.script("app4_analysis", ["401"])
    result = _run_job("task_chain_job", resources, instance, "1-7_100", tags={**task, "zqyy/force": "true"})
    assert not result.success
    failure = result.failure_data_for_node("assistant_member_apps")
    assert "Failure: app4_analysis: 1 of 1 target(s) failed: 1-7_100: " in failure.error.message
    assert _materialized(result) == {"app5_tactics": {"1-7_100"}}
    assert metadata_of_partition(result, "app5_tactics", "1-7_100")["upstream_failed"] == "app4_analysis"
    _, app5 = cache_rows(venue, "app5_tactics")
    assert app5["dagster_run_id"] == result.run_id and _refs(app5)["sources"] == [_source(good_app4)]
