"""The inbox sensor, evaluated with Dagster's own test helpers on a real database."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

import dagster as dg
import pytest

from tests.defs.events.conftest import MORNING, code_location, event_row, tick
from zqyy_assets.core import db, inbox
from zqyy_assets.core.partition_keys import app2_full_range_tags
from zqyy_assets.core.tags import RANGE_END_TAG, RANGE_START_TAG
from zqyy_assets.defs.events import sensors


def by_key(result) -> dict[str, dg.RunRequest]:
    return {r.run_key: r for r in result.run_requests}


def added_partitions(result) -> dict[str, list[str]]:
    return {r.partitions_def_name: list(r.partition_keys) for r in result.dynamic_partitions_requests}


def job_assets(job_name: str) -> set[str]:
    job = code_location().resolve_job_def(job_name)
    return {key.to_user_string() for key in job.asset_layer.selected_asset_keys}


def test_consumption_runs_the_member_chain_in_one_run(instance, postgres, db_url, add_event) -> None:
    event_id = add_event("consumption", member_id=100)

    result = tick(instance, postgres)

    assert list(by_key(result)) == [f"ev{event_id}:consumption"]
    request = result.run_requests[0]
    assert request.job_name == "consumption_chain_job"
    assert request.partition_key == "1-100"
    assert request.tags["zqyy/trigger"] == "consumption"
    assert request.tags["zqyy/event_id"] == str(event_id)
    assert "zqyy/force" not in request.tags
    assert request.tags["dagster/partition"] == "1-100"  # resolved by Dagster against the job
    assert job_assets(request.job_name) == {"app3_clue", "app8_consolidation", "app7_customer"}
    assert added_partitions(result) == {"members": ["1-100"]}
    row = event_row(db_url, event_id)
    assert (row["status"], row["app_chain"]) == ("running", "app3→app8→app7")


def test_consumption_served_by_assistants_adds_their_chains(instance, postgres, db_url, add_event) -> None:
    event_id = add_event("consumption", member_id=100, assistant_id=7, payload={"assistant_ids": [7, 9]})

    result = tick(instance, postgres)

    runs = by_key(result)
    # Both assistant x member keys are new, so their chain answers them in one range run.
    assert list(runs) == [f"ev{event_id}:consumption", f"ev{event_id}:consumption_assistant"]
    assistant_run = runs[f"ev{event_id}:consumption_assistant"]
    assert assistant_run.job_name == "consumption_assistant_chain_job"
    assert assistant_run.partition_key is None
    assert (assistant_run.tags[RANGE_START_TAG], assistant_run.tags[RANGE_END_TAG]) == ("1-7_100", "1-9_100")
    assert job_assets(assistant_run.job_name) == {"app4_analysis", "app5_tactics"}
    assert added_partitions(result) == {"members": ["1-100"], "assistant_members": ["1-7_100", "1-9_100"]}
    assert event_row(db_url, event_id)["app_chain"] == "app3→app8→app7 + app4→app5"


def test_a_second_visit_of_a_known_member_runs_alone(instance, postgres, add_event) -> None:
    """Only keys new to the instance can share a range (a range spans keys in the order they
    were added); a member seen before gets a run of its own."""
    instance.add_dynamic_partitions("members", ["1-100"])
    known, new_1, new_2 = (add_event("consumption", member_id=m) for m in (100, 101, 102))

    runs = by_key(tick(instance, postgres))

    assert runs[f"ev{known}:consumption"].partition_key == "1-100"
    batch = runs[f"ev{new_1}-{new_2}:consumption"]
    assert (batch.tags[RANGE_START_TAG], batch.tags[RANGE_END_TAG]) == ("1-101", "1-102")
    assert len(runs) == 2


@pytest.mark.parametrize(
    ("event_type", "kwargs", "job_name", "partition", "assets"),
    [
        ("note_created", {}, "note_chain_job", "1-100", {"app6_note", "app8_consolidation"}),
        ("task_assigned", {"assistant_id": 7}, "task_chain_job", "1-7_100", {"app4_analysis", "app5_tactics"}),
    ],
)
def test_each_event_type_runs_its_chain(
    instance, postgres, add_event, event_type, kwargs, job_name, partition, assets
) -> None:
    add_event(event_type, member_id=100, **kwargs)

    (request,) = tick(instance, postgres).run_requests

    assert (request.job_name, request.partition_key, request.tags["zqyy/trigger"]) == (job_name, partition, event_type)
    assert job_assets(job_name) == assets


def test_dws_completions_of_a_window_become_one_prewarm_run(instance, postgres, db_url, add_event) -> None:
    first = add_event("dws_completed", site_id=1, member_id=None)
    second = add_event("dws_completed", site_id=2, member_id=None)

    result = tick(instance, postgres)

    (request,) = result.run_requests
    assert request.run_key == f"ev{first}-{second}:app2_prewarm"
    assert request.job_name == "app2_prewarm_job"
    assert job_assets("app2_prewarm_job") == {"app2_finance"}
    for tag, value in app2_full_range_tags().items():  # all 72 partitions in the one run
        assert request.tags[tag] == value
    assert request.tags["zqyy/site_ids"] == "1,2"
    assert result.dynamic_partitions_requests == []
    assert {event_row(db_url, e)["status"] for e in (first, second)} == {"running"}


def test_cursor_advances_past_handled_events_only(instance, postgres, add_event) -> None:
    first = add_event("consumption", member_id=100)
    second = add_event("note_created", member_id=101)

    result = tick(instance, postgres)
    assert len(result.run_requests) == 2
    assert result.cursor == str(second)

    idle = tick(instance, postgres, result.cursor)
    assert idle.run_requests == [] and idle.skip_message
    assert idle.cursor == result.cursor

    third = add_event("consumption", member_id=102)
    later = tick(instance, postgres, result.cursor)
    assert [r.run_key for r in later.run_requests] == [f"ev{third}:consumption"]
    assert later.cursor == str(third)
    assert first < second < third


def test_a_burst_larger_than_the_window_spreads_over_ticks(instance, postgres, add_event, monkeypatch) -> None:
    monkeypatch.setattr(sensors, "WINDOW", 2)
    ids = [add_event("consumption", member_id=m) for m in (100, 101, 102)]

    first = tick(instance, postgres)
    second = tick(instance, postgres, first.cursor)

    assert [r.run_key for r in first.run_requests] == [f"ev{ids[0]}-{ids[1]}:consumption"]
    assert [r.run_key for r in second.run_requests] == [f"ev{ids[2]}:consumption"]


def test_same_member_same_business_day_runs_once(instance, postgres, db_url, add_event) -> None:
    first = add_event("consumption", member_id=100)
    again = add_event("consumption", member_id=100, occurred_at=MORNING + timedelta(hours=12))  # 22:00, same day
    other_member = add_event("consumption", member_id=101)
    other_type = add_event("note_created", member_id=100)
    next_day = add_event("consumption", member_id=100, occurred_at=MORNING + timedelta(hours=21))  # 07:00 next day

    result = tick(instance, postgres)

    # The first two are new members (one range run); the note and the next day's visit reuse 1-100.
    assert set(by_key(result)) == {
        f"ev{first}-{other_member}:consumption",
        f"ev{other_type}:note",
        f"ev{next_day}:consumption",
    }
    skipped = event_row(db_url, again)
    assert (skipped["status"], skipped["duplicate_of"]) == ("skipped_duplicate", first)
    assert skipped["finished_at"] is not None
    with db.connect(db_url) as conn:
        skipped_that_day = conn.execute(
            "SELECT count(*) AS n FROM biz.ai_events"
            " WHERE site_id = 1 AND biz_date = %s AND status = 'skipped_duplicate'",
            (MORNING.date(),),
        ).fetchone()
        assert skipped_that_day["n"] == 1


def test_duplicate_arriving_in_a_later_tick_is_skipped(instance, postgres, db_url, add_event) -> None:
    add_event("consumption", member_id=100)
    result = tick(instance, postgres)
    late = add_event("consumption", member_id=100)

    later = tick(instance, postgres, result.cursor)

    assert later.run_requests == []
    assert event_row(db_url, late)["status"] == "skipped_duplicate"


def test_forced_event_runs_again_and_forces_the_answer(instance, postgres, db_url, add_event) -> None:
    add_event("consumption", member_id=100)
    forced = add_event("consumption", member_id=100, is_forced=True)
    after_forced = add_event("consumption", member_id=100)

    runs = by_key(tick(instance, postgres))

    assert runs[f"ev{forced}:consumption"].tags["zqyy/force"] == "true"
    assert f"ev{after_forced}:consumption" not in runs
    assert event_row(db_url, after_forced)["status"] == "skipped_duplicate"


def test_events_missing_their_ids_fail_without_runs(instance, postgres, db_url, add_event) -> None:
    no_member = add_event("consumption", member_id=None)
    no_assistant = add_event("task_assigned", member_id=100)
    valid_task = add_event("task_assigned", member_id=100, assistant_id=7)

    result = tick(instance, postgres)

    # The invalid task does not count as the day's first task for the member.
    assert [r.run_key for r in result.run_requests] == [f"ev{valid_task}:task:7"]
    for event_id, needle in ((no_member, "member_id"), (no_assistant, "assistant_id")):
        row = event_row(db_url, event_id)
        assert row["status"] == "failed" and needle in row["error_message"]


def test_a_tick_evaluated_again_requests_the_same_runs(instance, postgres, db_url, add_event) -> None:
    """The daemon died after the sensor committed its decisions but before the tick was stored:
    the next evaluation starts from the old cursor and must ask for the very same runs."""
    first = add_event("consumption", member_id=100, assistant_id=7)
    dup = add_event("consumption", member_id=100)
    dws = add_event("dws_completed", site_id=1, member_id=None)
    lost_tick = tick(instance, postgres)
    newcomer = add_event("consumption", member_id=101)  # arrives before the retry
    dws_later = add_event("dws_completed", site_id=2, member_id=None)

    retry = tick(instance, postgres)  # same (empty) cursor

    assert set(by_key(lost_tick)) <= set(by_key(retry))
    for key, request in by_key(lost_tick).items():
        assert by_key(retry)[key].partition_key == request.partition_key
        assert by_key(retry)[key].job_name == request.job_name
    assert set(by_key(retry)) - set(by_key(lost_tick)) == {f"ev{newcomer}:consumption", f"ev{dws_later}:app2_prewarm"}
    assert f"ev{dws}:app2_prewarm" in by_key(retry)
    assert event_row(db_url, dup)["status"] == "skipped_duplicate"
    with db.connect(db_url) as conn:
        rows = conn.execute("SELECT run_key, event_ids FROM biz.ai_event_runs ORDER BY run_key").fetchall()
    assert [r["run_key"] for r in rows] == sorted(by_key(retry))
    assert {r["run_key"]: r["event_ids"] for r in rows}[f"ev{first}:consumption"] == [first]


def test_events_commit_in_id_order_so_the_cursor_skips_none(instance, postgres, db_url) -> None:
    """Ids are taken at insert, not at commit: had a later insert committed first, a cursor past
    it would lose the earlier one. An event's id is taken under a lock held to commit, so a
    second producer waits and gets the next id only after the first has committed."""
    with db.connect(db_url) as slow:
        slow_id = inbox.insert_event(slow, event_type="consumption", site_id=1, member_id=100, occurred_at=MORNING)
        with ThreadPoolExecutor(1) as pool:
            fast = pool.submit(_insert_committed, db_url, 101)
            _wait_for_a_blocked_insert(db_url, fast)
            assert not fast.done()  # waits for the first producer's commit

            held = tick(instance, postgres)
            assert held.run_requests == [] and held.cursor is None

            slow.commit()
            fast_id = fast.result(timeout=10)

    assert slow_id < fast_id
    result = tick(instance, postgres, held.cursor)
    assert [r.run_key for r in result.run_requests] == [f"ev{slow_id}-{fast_id}:consumption"]


def _wait_for_a_blocked_insert(db_url: str, insert: Future[int], timeout: float = 10.0) -> None:
    """Until another session waits for the event-id lock (or fail after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    with db.connect(db_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())"
            ).fetchone()
            if waiting["n"]:
                return
            # Poll again shortly, meanwhile watching the insert: it must not finish first.
            with contextlib.suppress(TimeoutError):
                insert.result(timeout=0.02)
                raise AssertionError("the second insert did not wait for the first one's commit")
    raise AssertionError(f"no insert waited for the event-id lock within {timeout} s")


def _insert_committed(db_url: str, member_id: int) -> int:
    with db.transaction(db_url) as conn:
        return inbox.insert_event(conn, event_type="consumption", site_id=1, member_id=member_id, occurred_at=MORNING)


def test_events_already_decided_elsewhere_are_not_run(instance, postgres, db_url, add_event) -> None:
    event_id = add_event("consumption", member_id=100)
    with db.transaction(db_url) as conn:
        conn.execute(
            "UPDATE biz.ai_events SET status = 'failed', error_message = 'cancelled by admin' WHERE id = %s",
            (event_id,),
        )

    result = tick(instance, postgres)

    assert result.run_requests == []
    assert result.cursor == str(event_id)
