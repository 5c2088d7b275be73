"""Batching first-time partition keys into range runs (for chains whose assets answer ranges)."""

from __future__ import annotations

from datetime import date

import dagster as dg

from tests.defs.events.conftest import event_row, tick
from zqyy_assets.core import planning
from zqyy_assets.core.inbox import Event
from zqyy_assets.core.planning import partitions_to_add, plan_window
from zqyy_assets.defs.ai.partitions import members_partitions
from zqyy_assets.defs.events import sensors


def event(event_id: int, event_type: str = "consumption", member_id: int = 100, **kw) -> Event:
    return Event(
        id=event_id,
        event_type=event_type,
        site_id=1,
        member_id=member_id,
        assistant_id=kw.pop("assistant_id", None),
        biz_date=date(2026, 3, 3),
        payload={},
        is_forced=kw.pop("is_forced", False),
        status="pending",
        **kw,
    )


def existing(*keys: str):
    return lambda partitions, wanted: set(wanted) & set(keys)


def test_without_range_chains_every_event_has_its_own_runs() -> None:
    plan = plan_window([event(1, member_id=100), event(2, member_id=101)], existing_keys=existing())

    assert [r.run_key for r in plan.runs] == ["ev1:consumption", "ev2:consumption"]


def test_first_time_keys_of_a_window_become_one_range_run() -> None:
    events = [
        event(1, member_id=100),
        event(2, member_id=101),
        event(3, member_id=102),  # already has a partition key
        event(4, member_id=103, is_forced=True),  # forced: answered on its own
        event(5, event_type="note_created", member_id=100),  # the key's second use in the window
        event(6, member_id=104),
    ]

    plan = plan_window(events, range_chains=frozenset({"consumption", "note"}), existing_keys=existing("1-102"))

    by_key = {r.run_key: r for r in plan.runs}
    assert set(by_key) == {"ev3:consumption", "ev4:consumption", "ev5:note", "ev1-6:consumption"}
    batch = by_key["ev1-6:consumption"]
    assert batch.partition_key is None and batch.event_ids == (1, 2, 6)
    assert (batch.tags["dagster/asset_partition_range_start"], batch.tags["dagster/asset_partition_range_end"]) == (
        "1-100",
        "1-104",
    )
    assert batch.tags["zqyy/partition_keys"] == "1-100,1-101,1-104"
    assert (batch.tags["zqyy/event_id"], batch.tags["zqyy/event_count"], batch.tags["zqyy/trigger"]) == (
        "1",
        "3",
        "consumption",
    )
    # The range's keys are added first and together, so the range spans exactly them.
    assert partitions_to_add(plan.runs) == {"members": ["1-100", "1-101", "1-104", "1-102", "1-103"]}
    assert plan.chains_by_event == {e.id: ("app6→app8" if e.id == 5 else "app3→app8→app7") for e in events}


def test_a_long_burst_is_cut_into_ranges_of_at_most_range_max(monkeypatch) -> None:
    monkeypatch.setattr(planning, "RANGE_MAX", 2)
    events = [event(i, member_id=100 + i) for i in range(1, 6)]

    plan = plan_window(events, range_chains=frozenset({"consumption"}), existing_keys=existing())

    assert [r.run_key for r in plan.runs] == ["ev1-2:consumption", "ev3-4:consumption", "ev5:consumption"]
    assert partitions_to_add(plan.runs) == {"members": [f"1-{100 + i}" for i in range(1, 6)]}


def test_assistant_chains_batch_on_their_own_keys() -> None:
    events = [event(1, member_id=100, assistant_id=7), event(2, member_id=101, assistant_id=7)]

    plan = plan_window(
        events, range_chains=frozenset({"consumption", "consumption_assistant"}), existing_keys=existing()
    )

    assert [r.run_key for r in plan.runs] == ["ev1-2:consumption", "ev1-2:consumption_assistant"]
    assert partitions_to_add(plan.runs) == {"members": ["1-100", "1-101"], "assistant_members": ["1-7_100", "1-7_101"]}


def test_keys_of_re_requested_runs_are_not_batched_again() -> None:
    plan = plan_window(
        [event(2, member_id=100), event(3, member_id=101), event(4, member_id=102)],
        range_chains=frozenset({"consumption"}),
        existing_keys=existing(),
        used_keys=[("members", "1-100")],
    )

    assert [r.run_key for r in plan.runs] == ["ev2:consumption", "ev3-4:consumption"]


def test_existing_keys_are_asked_once_per_partitions_about_the_window_only() -> None:
    """The question's size follows the window (its distinct candidate keys), not the key set."""
    asked: list[tuple[str, set[str]]] = []

    def spy(partitions, wanted):
        asked.append((partitions, set(wanted)))
        return set(wanted) & {"1-100"}

    events = [
        event(1, member_id=100, assistant_id=7),
        event(2, event_type="note_created", member_id=101),
        event(3, member_id=101),
        event(4, member_id=102, is_forced=True),  # forced: runs alone whatever exists
    ]
    plan = plan_window(
        events,
        range_chains=frozenset({"consumption", "consumption_assistant", "note"}),
        existing_keys=spy,
    )

    assert sorted(asked) == [("assistant_members", {"1-7_100"}), ("members", {"1-100", "1-101"})]
    assert {r.run_key for r in plan.runs} == {
        "ev1:consumption",  # 1-100 exists: a run of its own
        "ev1:consumption_assistant:7",  # the one new assistant key: a range of one is a plain run
        "ev2:note",  # 1-101 is new; a range of one
        "ev3:consumption",  # 1-101's second use in the window
        "ev4:consumption",
    }


def test_every_member_chain_answers_ranges() -> None:
    """Its assets declare a single-run backfill policy, so the sensor batches their new keys."""
    assert {"consumption", "consumption_assistant", "note", "task"} == sensors.RANGE_CHAINS


def test_sensor_batches_new_members_and_repeats_itself_exactly(instance, postgres, db_url, add_event) -> None:
    instance.add_dynamic_partitions("members", ["1-102"])
    ids = [add_event("consumption", member_id=m) for m in (100, 101, 102, 103)]

    first = tick(instance, postgres)
    again = tick(instance, postgres)  # the same window evaluated again (the tick was lost)

    for result in (first, again):
        runs = {r.run_key: r for r in result.run_requests}
        assert set(runs) == {f"ev{ids[0]}-{ids[3]}:consumption", f"ev{ids[2]}:consumption"}
        batch = runs[f"ev{ids[0]}-{ids[3]}:consumption"]
        assert batch.job_name == "consumption_chain_job" and batch.partition_key is None
        assert batch.tags["zqyy/partition_keys"] == "1-100,1-101,1-103"
        assert [(r.partitions_def_name, list(r.partition_keys)) for r in result.dynamic_partitions_requests] == [
            ("members", ["1-100", "1-101", "1-103", "1-102"])
        ]
    assert {event_row(db_url, e)["status"] for e in ids} == {"running"}


@dg.asset(partitions_def=members_partitions, backfill_policy=dg.BackfillPolicy.single_run())
def range_probe(context) -> None:
    context.log.info(f"answering {context.partition_keys}")


def test_a_range_run_covers_exactly_its_own_keys(instance, postgres, add_event) -> None:
    """Dagster resolves the range against the keys' order, after the daemon applied the tick's
    add request; keys that existed before stay outside it."""
    instance.add_dynamic_partitions("members", ["1-50", "1-102"])
    ids = [add_event("consumption", member_id=m) for m in (100, 101, 102, 103)]
    result = tick(instance, postgres)
    for request in result.dynamic_partitions_requests:  # what the daemon does with them
        new = [k for k in request.partition_keys if not instance.has_dynamic_partition(request.partitions_def_name, k)]
        instance.add_dynamic_partitions(request.partitions_def_name, new)
    instance.add_dynamic_partitions("members", ["1-999"])  # a later key, after the range
    batch = next(r for r in result.run_requests if r.run_key == f"ev{ids[0]}-{ids[3]}:consumption")
    range_tags = {k: v for k, v in batch.tags.items() if k.startswith("dagster/asset_partition_range")}

    assert dg.materialize([range_probe], instance=instance, tags=range_tags).success

    assert instance.get_materialized_partitions(range_probe.key) == {"1-100", "1-101", "1-103"}
