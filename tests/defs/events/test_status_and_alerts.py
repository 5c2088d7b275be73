"""Event status follows the event's Dagster runs; a failed run raises one alert."""

from __future__ import annotations

import dagster as dg
from dagster._core.storage.runs.schema import RunTagsTable

from tests.defs.events.conftest import code_location, event_row, tick
from zqyy_assets.core import alerts, db
from zqyy_assets.core.tags import RUN_KEY_TAG, SENSOR_NAME_TAG
from zqyy_assets.defs.ai.partitions import members_partitions
from zqyy_assets.defs.events.status_sensors import (
    ai_event_status_sensor,
    ai_run_failure_alert_sensor,
)


@dg.op
def answer() -> None:
    return None


@dg.op
def time_out() -> None:
    raise RuntimeError("DashScope timed out after 180 s")


@dg.job
def passing_chain() -> None:
    answer()


@dg.job
def failing_chain() -> None:
    time_out()


def run_as_sensor_did(instance: dg.DagsterInstance, job: dg.JobDefinition, run_key: str) -> dg.DagsterRun:
    """A finished run carrying the tags the daemon puts on a run the inbox sensor requested."""
    result = job.execute_in_process(
        instance=instance, tags={RUN_KEY_TAG: run_key, SENSOR_NAME_TAG: "ai_events_sensor"}, raise_on_error=False
    )
    return result.dagster_run


def follow_runs(instance: dg.DagsterInstance, postgres) -> dg.SensorExecutionData:
    with dg.build_sensor_context(instance=instance, resources={"postgres": postgres}) as context:
        return ai_event_status_sensor.evaluate_tick(context)


def test_event_goes_running_then_completed(instance, postgres, db_url, add_event) -> None:
    event_id = add_event("note_created", member_id=100)
    tick(instance, postgres)
    assert event_row(db_url, event_id)["status"] == "running"

    follow_runs(instance, postgres)  # no run yet: stays running, no run id
    row = event_row(db_url, event_id)
    assert (row["status"], row["dagster_run_ids"]) == ("running", [])

    run = run_as_sensor_did(instance, passing_chain, f"ev{event_id}:note")
    follow_runs(instance, postgres)

    row = event_row(db_url, event_id)
    assert (row["status"], row["dagster_run_ids"]) == ("completed", [run.run_id])
    assert row["started_at"] is not None and row["finished_at"] >= row["started_at"]
    with db.connect(db_url) as conn:
        runs = conn.execute("SELECT run_status, finished_at FROM biz.ai_event_runs").fetchall()
    assert [r["run_status"] for r in runs] == ["SUCCESS"] and runs[0]["finished_at"] is not None


def test_event_fails_when_one_of_its_chains_fails(instance, postgres, db_url, add_event) -> None:
    event_id = add_event("consumption", member_id=100, assistant_id=7)
    tick(instance, postgres)

    member_run = run_as_sensor_did(instance, passing_chain, f"ev{event_id}:consumption")
    follow_runs(instance, postgres)
    assert event_row(db_url, event_id)["status"] == "running"  # one of two runs still to come

    assistant_run = run_as_sensor_did(instance, failing_chain, f"ev{event_id}:consumption_assistant:7")
    follow_runs(instance, postgres)

    row = event_row(db_url, event_id)
    assert row["status"] == "failed"
    assert row["dagster_run_ids"] == [member_run.run_id, assistant_run.run_id]
    assert "time_out: " in row["error_message"] and "DashScope timed out" in row["error_message"]


def test_run_not_started_yet_is_recorded_and_waited_for(instance, postgres, db_url, add_event) -> None:
    event_id = add_event("task_assigned", member_id=100, assistant_id=7)
    tick(instance, postgres)
    created = instance.create_run_for_job(
        passing_chain,
        tags={RUN_KEY_TAG: f"ev{event_id}:task:7", SENSOR_NAME_TAG: "ai_events_sensor"},
        status=dg.DagsterRunStatus.NOT_STARTED,
    )

    follow_runs(instance, postgres)

    row = event_row(db_url, event_id)
    assert (row["status"], row["dagster_run_ids"], row["finished_at"]) == ("running", [created.run_id], None)


def test_run_whose_tags_missed_the_index_is_still_followed(instance, postgres, db_url, add_event) -> None:
    """A daemon killed between writing a run and writing its tags leaves the run out of every
    tag filter; the status sensor finds it by the tags in the run's body."""
    event_id = add_event("note_created", member_id=100)
    tick(instance, postgres)
    run = run_as_sensor_did(instance, passing_chain, f"ev{event_id}:note")
    with instance.run_storage.connect() as conn:
        conn.execute(RunTagsTable.delete().where(RunTagsTable.c.run_id == run.run_id))
    assert not instance.get_runs(filters=dg.RunsFilter(tags={RUN_KEY_TAG: f"ev{event_id}:note"}))

    follow_runs(instance, postgres)

    row = event_row(db_url, event_id)
    assert (row["status"], row["dagster_run_ids"]) == ("completed", [run.run_id])


def test_runs_of_other_sensors_are_ignored(instance, postgres, db_url, add_event) -> None:
    event_id = add_event("note_created", member_id=100)
    tick(instance, postgres)
    passing_chain.execute_in_process(
        instance=instance, tags={RUN_KEY_TAG: f"ev{event_id}:note", SENSOR_NAME_TAG: "some_other_sensor"}
    )

    follow_runs(instance, postgres)

    assert event_row(db_url, event_id)["status"] == "running"


# ------------------------------------------------------------------------- split ranges


@dg.op(config_schema={"failed_partitions": str})
def range_step(context) -> None:
    # What a member app raises when some keys of its range failed (assets._failure).
    failed = context.op_config["failed_partitions"]
    raise dg.Failure(f"target(s) failed: {failed}", metadata={"failed_partitions": failed})


@dg.job
def failing_range() -> None:
    range_step()


def fail_range(instance, run_key: str, failed_partitions: str) -> dg.DagsterRun:
    return failing_range.execute_in_process(
        instance=instance,
        tags={RUN_KEY_TAG: run_key, SENSOR_NAME_TAG: "ai_events_sensor"},
        raise_on_error=False,
        run_config={"ops": {"range_step": {"config": {"failed_partitions": failed_partitions}}}},
    ).dagster_run


def tick_as_daemon(instance, postgres) -> list[dg.RunRequest]:
    """An inbox tick, its dynamic partitions added as the daemon adds them."""
    result = tick(instance, postgres)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result.run_requests


def follow_runs_with_definitions(instance, postgres):
    with dg.build_sensor_context(
        instance=instance,
        instance_ref=instance.get_ref(),
        definitions=code_location(),
        resources={"postgres": postgres},
    ) as context:
        return ai_event_status_sensor.evaluate_tick(context)


def test_a_range_failing_for_one_member_is_split_into_each_events_own_run(
    instance, postgres, db_url, add_event
) -> None:
    ids = [add_event("consumption", member_id=m) for m in (100, 101, 102)]
    [batch] = tick_as_daemon(instance, postgres)
    assert batch.run_key == f"ev{ids[0]}-{ids[2]}:consumption"
    range_run = fail_range(instance, batch.run_key, "1-101")

    result = follow_runs_with_definitions(instance, postgres)

    requests = {r.run_key: r for r in result.run_requests}
    assert list(requests) == [f"ev{i}:consumption" for i in ids]  # the runs each would have had alone
    assert [r.partition_key for r in requests.values()] == ["1-100", "1-101", "1-102"]
    assert all(
        r.job_name == "consumption_chain_job" and r.tags["zqyy/split_from"] == batch.run_key for r in requests.values()
    )
    assert {event_row(db_url, i)["status"] for i in ids} == {"running"}  # not failed: their own runs decide
    # Until Dagster has them, every tick asks again (the same run keys: a lost tick loses none).
    assert [r.run_key for r in follow_runs_with_definitions(instance, postgres).run_requests] == list(requests)
    # The inbox sensor, evaluating that window again, asks only for what it planned itself.
    assert [r.run_key for r in tick(instance, postgres).run_requests] == [batch.run_key]

    own = {}
    for event_id, chain in zip(ids, (passing_chain, failing_chain, passing_chain), strict=True):
        own[event_id] = chain.execute_in_process(
            instance=instance,
            raise_on_error=False,
            tags={RUN_KEY_TAG: f"ev{event_id}:consumption", SENSOR_NAME_TAG: "ai_event_status_sensor"},
        ).dagster_run
    after = follow_runs_with_definitions(instance, postgres)

    assert after.run_requests == []
    rows = {i: event_row(db_url, i) for i in ids}
    assert [rows[i]["status"] for i in ids] == ["completed", "failed", "completed"]
    assert all(rows[i]["dagster_run_ids"] == [range_run.run_id, own[i].run_id] for i in ids)
    assert "DashScope timed out" in rows[ids[1]]["error_message"]


def test_a_range_failing_for_every_member_is_not_split(instance, postgres, db_url, add_event) -> None:
    """Nothing to save by splitting (an invalid key fails everyone): one failed run, one alert."""
    ids = [add_event("consumption", member_id=m) for m in (100, 101)]
    [batch] = tick_as_daemon(instance, postgres)
    fail_range(instance, batch.run_key, "1-100,1-101")

    result = follow_runs_with_definitions(instance, postgres)

    assert result.run_requests == []
    assert [event_row(db_url, i)["status"] for i in ids] == ["failed", "failed"]


# ------------------------------------------------------------------------------------ alerts


@dg.asset(name="app3_clue", partitions_def=members_partitions)
def broken_app3() -> None:
    raise RuntimeError("InvalidApiKey: the API key is wrong")


def raise_alert(instance, postgres, run: dg.DagsterRun, failure_event: dg.DagsterEvent) -> None:
    context = dg.build_run_status_sensor_context(
        sensor_name="ai_run_failure_alert_sensor",
        dagster_event=failure_event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"postgres": postgres},
    ).for_run_failure()
    ai_run_failure_alert_sensor(context)


def test_failed_run_raises_one_pending_alert(instance, postgres, db_url, add_event) -> None:
    event_id = add_event("consumption", member_id=100)
    instance.add_dynamic_partitions("members", ["1-100"])
    result = dg.materialize(
        [broken_app3],
        instance=instance,
        partition_key="1-100",
        tags={"zqyy/event_id": str(event_id), "zqyy/trigger": "consumption"},
        raise_on_error=False,
    )
    assert not result.success

    raise_alert(instance, postgres, result.dagster_run, result.get_run_failure_event())
    raise_alert(instance, postgres, result.dagster_run, result.get_run_failure_event())  # a re-evaluated tick

    with db.connect(db_url) as conn:
        alerts = conn.execute("SELECT * FROM biz.ai_alerts").fetchall()
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert["app_type"], alert["site_id"], alert["event_id"]) == ("app3_clue", 1, event_id)
    assert (alert["alert_status"], alert["alert_type"], alert["dagster_run_id"]) == (
        "pending",
        "failed",
        result.dagster_run.run_id,
    )
    assert "app3_clue 运行失败" in alert["error_message"] and "InvalidApiKey" in alert["error_message"]
    assert alert["occurrences"] == 1  # the re-evaluated tick did not count the run twice


def test_failed_runs_of_one_site_and_app_are_counted_in_one_alert(instance, postgres, db_url) -> None:
    instance.add_dynamic_partitions("members", ["1-100", "1-101"])
    runs = [
        dg.materialize([broken_app3], instance=instance, partition_key=key, raise_on_error=False)
        for key in ("1-100", "1-101")
    ]
    for result in (*runs, runs[0]):  # the first run delivered again
        raise_alert(instance, postgres, result.dagster_run, result.get_run_failure_event())

    with db.connect(db_url) as conn:
        [alert] = conn.execute("SELECT * FROM biz.ai_alerts").fetchall()
        pushes = conn.execute("SELECT count(*) AS n FROM biz.realtime_outbox WHERE type = 'alert_created'").fetchone()
    assert (alert["occurrences"], alert["dagster_run_id"]) == (2, runs[0].dagster_run.run_id)
    assert pushes["n"] == 1


def test_a_run_whose_call_raised_the_alert_is_not_counted_again(instance, postgres, db_url) -> None:
    instance.add_dynamic_partitions("members", ["1-100"])
    result = dg.materialize([broken_app3], instance=instance, partition_key="1-100", raise_on_error=False)
    with db.transaction(db_url) as conn:  # what the LLM service does when the run's call fails
        alerts.raise_alert(
            conn,
            site_id=1,
            app_type="app3_clue",
            alert_type="failed",
            message="app3_clue 调用失败:InvalidApiKey",
            dagster_run_id=result.dagster_run.run_id,
        )
    raise_alert(instance, postgres, result.dagster_run, result.get_run_failure_event())
    with db.connect(db_url) as conn:
        [alert] = conn.execute("SELECT * FROM biz.ai_alerts").fetchall()
    assert alert["occurrences"] == 1 and "调用失败" in alert["error_message"]


def test_alert_for_a_run_without_event_or_site(instance, postgres, db_url) -> None:
    result = failing_chain.execute_in_process(instance=instance, raise_on_error=False)

    raise_alert(instance, postgres, result.dagster_run, result.get_run_failure_event())

    with db.connect(db_url) as conn:
        alert = conn.execute("SELECT * FROM biz.ai_alerts").fetchone()
    assert (alert["app_type"], alert["site_id"], alert["event_id"]) == ("time_out", None, None)
    assert "DashScope timed out" in alert["error_message"]
