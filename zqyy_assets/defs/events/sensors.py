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
"""

from __future__ import annotations

import dagster as dg

from zqyy_assets.defs.ai.jobs import (
    app2_prewarm_job,
    consumption_assistant_chain_job,
    consumption_chain_job,
    note_chain_job,
    task_chain_job,
)
from zqyy_assets.defs.ai.partitions import assistant_members_partitions, members_partitions
from zqyy_assets.defs.events import inbox
from zqyy_assets.defs.events.chains import ASSISTANT_MEMBERS, MEMBERS
from zqyy_assets.defs.events.planning import partitions_to_add, plan_window
from zqyy_assets.defs.events.status import INBOX_SENSOR_NAME
from zqyy_assets.lib.resources import PostgresResource

# Events decided per tick. A burst larger than this is spread over consecutive ticks (5 s apart).
WINDOW = 500

_PARTITIONS = {MEMBERS: members_partitions, ASSISTANT_MEMBERS: assistant_members_partitions}


def run_request(run: inbox.PlannedRun) -> dg.RunRequest:
    # No asset_selection: each chain job selects exactly its chain, and a subset selection
    # would make the code server build a subset job for every request.
    return dg.RunRequest(run_key=run.run_key, job_name=run.job_name, partition_key=run.partition_key, tags=run.tags)


@dg.sensor(
    name=INBOX_SENSOR_NAME,
    jobs=[consumption_chain_job, consumption_assistant_chain_job, note_chain_job, task_chain_job, app2_prewarm_job],
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
        plan = plan_window(events)
        replayed = inbox.load_runs(conn, {key for e in events for key in e.run_keys})
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
