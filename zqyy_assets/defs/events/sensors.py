"""``ai_events_sensor``: the inbox -> one run per chain per event (exactly once).

Each tick reads the next window of events past the cursor (the last event id handled; events
commit in id order, see migration 0008), decides every pending event (invalid,
same-day duplicate, or its runs), stores the decisions and the planned runs in one
transaction, then returns the run requests, the dynamic partitions they need and the new
cursor. Why a restart neither loses nor repeats an event:

- the cursor only moves past events whose decisions are committed;
- a tick that dies after committing but before Dagster stored its result is evaluated again
  from the old cursor: the events then already have runs, and the sensor requests those very
  runs again (same run keys), which Dagster creates at most once;
- once Dagster has stored a tick's requests it submits any that are left after a restart
  itself, without evaluating the sensor again.

Batching: every member chain's assets answer a partition range in one run (a single-run
backfill policy), so the window's first-time keys become one range run per chain
(``planning.plan_window``): a burst of new members is a few runs, not one per event. A key seen
before, a forced event and a key's second use in the window keep a run of their own.

Cost: whether a key is new is one bounded query per partitions definition for the window's own
keys (``instance.get_existing_dynamic_partitions``), never a load of every key, so a tick costs
what its events cost, however many members the chain has. Keys of members quiet for the
retention window are retired daily (``retirement.py``); a retired member's key is new again.
"""

from __future__ import annotations

from collections.abc import Collection
from collections.abc import Set as AbstractSet

import dagster as dg

from zqyy_assets.core import event_runs, inbox, member_keys
from zqyy_assets.core.chains import CHAINS, Chain
from zqyy_assets.core.planning import (
    INBOX_SENSOR_NAME,
    partitions_to_add,
    plan_window,
    run_partition_keys,
)
from zqyy_assets.core.vocabulary import ASSISTANT_MEMBERS, MEMBERS
from zqyy_assets.defs.ai.assets import ai_assets
from zqyy_assets.defs.ai.jobs import (
    app2_prewarm_job,
    consumption_assistant_chain_job,
    consumption_chain_job,
    note_chain_job,
    task_chain_job,
)
from zqyy_assets.defs.ai.partitions import (
    assistant_members_partitions,
    members_partitions,
)
from zqyy_assets.defs.resources import PostgresResource

# Events decided per tick. A burst larger than this is spread over consecutive ticks (5 s apart).
WINDOW = 500

_PARTITIONS = {MEMBERS: members_partitions, ASSISTANT_MEMBERS: assistant_members_partitions}


def answers_ranges(chain: Chain) -> bool:
    """Whether every asset of the chain answers a partition range in one run (it declares a
    single-run backfill policy and reads ``context.partition_keys``)."""
    by_name = {key.to_user_string(): a for a in ai_assets for key in a.keys}
    return all(
        (policy := by_name[name].backfill_policy) is not None and policy.max_partitions_per_run is None
        for name in chain.asset_names
    )


# Member chains whose first-time keys of a window are batched into range runs (see plan_window).
RANGE_CHAINS = frozenset(c.name for c in CHAINS if c.partitions is not None and answers_ranges(c))


def _partitions_of(run: event_runs.PlannedRun) -> str | None:
    return next((c.partitions for c in CHAINS if c.job_name == run.job_name), None)


MEMBER_CHAIN_JOBS = [consumption_chain_job, consumption_assistant_chain_job, note_chain_job, task_chain_job]


def run_request(run: event_runs.PlannedRun) -> dg.RunRequest:
    # No asset_selection: each chain job selects exactly its chain, and a subset selection
    # would make the code server build a subset job for every request.
    return dg.RunRequest(run_key=run.run_key, job_name=run.job_name, partition_key=run.partition_key, tags=run.tags)


@dg.sensor(
    name=INBOX_SENSOR_NAME,
    jobs=[*MEMBER_CHAIN_JOBS, app2_prewarm_job],
    # The daemon evaluates sensors every 5 s at best; a 5 s minimum would skip every other loop.
    minimum_interval_seconds=1,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reads biz.ai_events past its cursor and requests one run per chain per event "
    "(run_key from the event id): consumption -> app3, app8, app7 (+ app4, app5 when an assistant served); "
    "note_created -> app6, app8; task_assigned -> app4, app5; dws_completed -> the 72 app2 partitions. "
    "Same (type, site, member, business date) runs once a day unless forced.",
)
def ai_events_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    cursor = inbox.decode_cursor(context.cursor)
    with postgres.connect() as conn:
        events = inbox.read_window(conn, cursor, WINDOW)
        if not events:
            return dg.SensorResult(skip_reason="no new events", cursor=context.cursor)
        # Until the commit below: no retirement page deletes a key this tick finds present.
        member_keys.hold_planning_lock(conn)
        replayed = event_runs.load_runs(conn, {key for e in events for key in e.run_keys}, splits=False)

        def existing_keys(partitions: str, keys: Collection[str]) -> AbstractSet[str]:
            # One bounded query for the window's keys (the storage's unique index on name and
            # key), never the whole key set: a tick costs what its events cost.
            return context.instance.get_existing_dynamic_partitions(partitions, list(keys))

        plan = plan_window(
            events,
            range_chains=RANGE_CHAINS,
            existing_keys=existing_keys,
            used_keys=[(_partitions_of(run), key) for run in replayed for key in run_partition_keys(run)],
        )
        inbox.record_decisions(
            conn, runs=plan.runs, chains_by_event=plan.chains_by_event, duplicates=plan.duplicates, invalid=plan.invalid
        )
        conn.commit()

    runs = [*replayed, *plan.runs]
    context.log.info(
        f"events {events[0].id}..{events[-1].id} ({len(events)}): {len(plan.runs)} runs requested, "
        f"{len(plan.duplicates)} same-day duplicates skipped, {len(plan.invalid)} invalid, "
        f"{len(replayed)} re-requested"
    )
    return dg.SensorResult(
        run_requests=[run_request(run) for run in runs],
        dynamic_partitions_requests=[
            _PARTITIONS[name].build_add_request(keys) for name, keys in partitions_to_add(runs).items()
        ],
        cursor=str(events[-1].id),
    )
