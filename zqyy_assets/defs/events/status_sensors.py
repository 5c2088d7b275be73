"""Events follow their Dagster runs; failed runs raise alerts.

- ``ai_event_status_sensor`` polls Dagster for the runs requested for events and still open
  (by run key), copies their run id and status to biz.ai_event_runs and rolls them up to the
  events. Polling the run storage, not a stream of status events, means a sensor restart or a
  missed tick loses nothing: the next tick reads the truth again.
- A range run (a burst's new members in one run) that failed for some members only is split:
  each of its events gets its own run (the run key it would have had unbatched; the members
  answered already are memo hits, no call), so one member's failure fails only its own event.
  The split is stored with the new runs in one transaction and the status sensor requests every
  split run Dagster does not have yet, so a lost tick loses none.
- ``ai_run_failure_alert_sensor`` raises an alert for every failed run
  (``core/alerts.py``: counted in the open alert of its site, app and type; a run counts once).
- A run stopped for its maximum runtime (Dagster's ``dagster/max_runtime`` tag, enforced by the
  daemon's run monitoring) is a ``timeout``: the event's error starts with ``timeout``, and the
  alert's type is ``timeout`` (raised by whichever of the two sensors sees the run first).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from zqyy_assets.core import alerts, event_runs, inbox
from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.partition_keys import parse_assistant_member_key, parse_member_key
from zqyy_assets.core.planning import (
    INBOX_SENSOR_NAME,
    is_range_run,
    run_partition_keys,
    split_range_run,
)
from zqyy_assets.core.tags import (
    EVENT_ID_TAG,
    FAILED_PARTITIONS_METADATA,
    PARTITION_TAG,
    RUN_KEY_TAG,
    SENSOR_NAME_TAG,
    SITE_TAG,
    WILL_RETRY_TAG,
)
from zqyy_assets.core.vocabulary import TERMINAL_RUN_STATUSES, TIMEOUT
from zqyy_assets.defs.events.sensors import MEMBER_CHAIN_JOBS, run_request
from zqyy_assets.defs.resources import PostgresResource

STATUS_SENSOR_NAME = "ai_event_status_sensor"
_REQUESTING_SENSORS = [INBOX_SENSOR_NAME, STATUS_SENSOR_NAME]  # split runs come from the status sensor
_MAX_ERROR_CHARS = 2000
_BODY_SCAN_LOOKBACK = timedelta(days=1)
_BODY_SCAN_LIMIT = 5000
_CLOCK_SLACK = timedelta(minutes=1)  # run creation times come from the daemon's clock


def _ts(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


# What Dagster's run monitoring says when it stops a run for its max runtime
# (dagster/_daemon/monitoring/run_monitoring.py: "Canceling due to exceeding maximum runtime of
# N seconds.", then "Exceeded maximum runtime of N seconds.").
_MAX_RUNTIME_WORDS = "maximum runtime"


def _failure_events(instance: dg.DagsterInstance, run_id: str) -> list[dg.DagsterEvent]:
    records = instance.get_records_for_run(
        run_id,
        of_type={
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.RUN_FAILURE,
            dg.DagsterEventType.RUN_CANCELING,
        },
    ).records
    return [r.event_log_entry.dagster_event for r in records if r.event_log_entry.dagster_event]


def _timed_out(events: list[dg.DagsterEvent]) -> str | None:
    """Run monitoring's message when it stopped the run for its max runtime, else None."""
    return next(
        (
            e.message
            for e in events
            if e.event_type in (dg.DagsterEventType.RUN_CANCELING, dg.DagsterEventType.RUN_FAILURE)
            and _MAX_RUNTIME_WORDS in (e.message or "")
        ),
        None,
    )


def _summary(events: list[dg.DagsterEvent]) -> str | None:
    parts = [_step_error(e) for e in events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    if not parts:
        parts = [e.message or "run failed" for e in events if e.event_type == dg.DagsterEventType.RUN_FAILURE]
    return "; ".join(parts) if parts else None


def run_error_summary(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The failed steps of a run and their errors, or the run's own failure message; a run
    stopped for its max runtime says ``timeout: ...`` first."""
    events = _failure_events(instance, run_id)
    timeout, summary = _timed_out(events), _summary(events)
    if timeout:
        summary = f"{TIMEOUT}: {timeout}" + (f"; {summary}" if summary else "")
    return summary[:_MAX_ERROR_CHARS] if summary else None


def _step_error(event: dg.DagsterEvent) -> str:
    error = getattr(event.event_specific_data, "error", None)
    if error is None:
        return f"{event.step_key}: {event.message or 'failed'}"
    # Dagster wraps the asset's own exception; its cause is what the staff need to read.
    while error.cause is not None:
        error = error.cause
    return f"{event.step_key}: {error.message.strip()}"


def _inbox_runs(records: list[dg.RunRecord], wanted: set[str]) -> dict[str, dg.RunRecord]:
    """The newest run of each wanted run key the inbox sensor used (a retried run shares its key)."""
    newest: dict[str, dg.RunRecord] = {}
    for record in records:
        tags = record.dagster_run.tags
        key = tags.get(RUN_KEY_TAG)
        if key not in wanted or tags.get(SENSOR_NAME_TAG) not in _REQUESTING_SENSORS:
            continue
        if key not in newest or record.create_timestamp > newest[key].create_timestamp:
            newest[key] = record
    return newest


def find_runs(instance: dg.DagsterInstance, requested: dict[str, datetime]) -> dict[str, dg.RunRecord]:
    """The run of each requested run key, by its tags, else by reading recent run bodies.

    Dagster's Postgres run storage writes a run and its tags in two autocommit statements: a
    daemon killed between them leaves a run whose tags are missing from the tag index, so no
    tag filter finds it (the daemon itself resumes it by its reserved run id). The run's body
    still carries its tags, so keys not found by tag are looked for among the runs created
    since they were requested (at most the last day).
    """
    if not requested:
        return {}
    wanted = set(requested)
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={RUN_KEY_TAG: sorted(wanted), SENSOR_NAME_TAG: _REQUESTING_SENSORS})
    )
    found = _inbox_runs(list(records), wanted)
    missing = wanted - set(found)
    if missing:
        since = max(min(requested[k] for k in missing), datetime.now(UTC) - _BODY_SCAN_LOOKBACK) - _CLOCK_SLACK
        recent = instance.get_run_records(filters=dg.RunsFilter(created_after=since), limit=_BODY_SCAN_LIMIT)
        found.update(_inbox_runs(list(recent), missing))
    return found


def collect_run_states(instance: dg.DagsterInstance, requested: dict[str, datetime]) -> list[event_runs.RunState]:
    states = []
    for key, record in find_runs(instance, requested).items():
        run = record.dagster_run
        over = run.status.value in TERMINAL_RUN_STATUSES and run.tags.get(WILL_RETRY_TAG) != "true"
        error = run_error_summary(instance, run.run_id) if over and run.status != dg.DagsterRunStatus.SUCCESS else None
        states.append(
            event_runs.RunState(
                run_key=key,
                run_id=run.run_id,
                status=run.status.value,
                started_at=_ts(record.start_time),
                finished_at=(_ts(record.end_time) or record.update_timestamp) if over else None,
                error_message=error,
            )
        )
    return states


def failed_partitions(instance: dg.DagsterInstance, run_id: str) -> set[str] | None:
    """The partitions a run's failed steps name (``FAILED_PARTITIONS_METADATA`` in the Failure's
    metadata), or None when a step failed without naming them (a crash: no telling which)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    keys: set[str] = set()
    for record in records:
        data = getattr(record.event_log_entry.dagster_event, "event_specific_data", None)
        user = getattr(data, "user_failure_data", None)
        named = user.metadata.get(FAILED_PARTITIONS_METADATA) if user is not None else None
        if named is None:
            return None
        keys.update(k for k in str(named.value).split(",") if k)
    return keys


def split_partly_failed_ranges(
    conn: DictConnection, instance: dg.DagsterInstance, states: list[event_runs.RunState], log: Any
) -> list[int]:
    """Split each range run that failed for some of its keys only; returns the events affected.
    A range that failed for every key, or for no key it can name, stays failed as one run."""
    failed = {s.run_key: s for s in states if s.status == "FAILURE" and s.finished_at is not None}
    affected: list[int] = []
    for run in event_runs.load_runs(conn, failed):
        if not is_range_run(run):
            continue
        keys = run_partition_keys(run)
        bad = failed_partitions(instance, failed[run.run_key].run_id)
        if not bad or not bad < set(keys):
            continue
        solo = split_range_run(run, inbox.read_events(conn, run.event_ids))
        event_runs.record_split(conn, run.run_key, solo)
        affected.extend(run.event_ids)
        log.info(f"range run {run.run_key} failed for {sorted(bad)} of {len(keys)} keys: split into {len(solo)} runs")
    return affected


@dg.sensor(
    name=STATUS_SENSOR_NAME,
    jobs=MEMBER_CHAIN_JOBS,
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Copies the status of the runs requested for inbox events (biz.ai_event_runs) and rolls it up "
    "to each event: running -> completed / failed, with its Dagster run ids. A range run that failed for some "
    "members only is split into each event's own run.",
)
def ai_event_status_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    with postgres.connect() as conn:
        requested = event_runs.open_runs(conn)
        if not requested:
            return dg.SensorResult(skip_reason="no event runs in flight")
        states = collect_run_states(context.instance, requested)
        for state in states:
            if state.finished_at is not None and (state.error_message or "").startswith(f"{TIMEOUT}:"):
                run = context.instance.get_run_by_id(state.run_id)
                if run is not None:
                    raise_run_alert(conn, context.instance, run)
        event_ids = event_runs.record_run_states(conn, states)
        event_ids += split_partly_failed_ranges(conn, context.instance, states, context.log)
        changed = event_runs.refresh_event_status(conn, sorted(set(event_ids)))
        to_request = event_runs.split_runs_to_request(conn, [s.run_key for s in states])
        conn.commit()
    summary = f"{len(requested)} runs in flight, {len(states)} found; {changed} event status rows updated"
    if not to_request:
        return dg.SensorResult(skip_reason=summary)
    context.log.info(f"{summary}; requesting {len(to_request)} split run(s)")
    return dg.SensorResult(run_requests=[run_request(run) for run in to_request])


# ------------------------------------------------------------------------------------ alerts


def _site_of(run: dg.DagsterRun) -> int | None:
    if run.tags.get(SITE_TAG, "").isdigit():
        return int(run.tags[SITE_TAG])
    partition = run.tags.get(PARTITION_TAG)
    for parse in (parse_member_key, parse_assistant_member_key):
        try:
            return parse(partition).site_id if partition else None
        except ValueError:
            continue
    return None


def _app_of(step_key: str | None, job_name: str) -> str:
    # An asset's step key is its asset key path joined by "__"; the last part is the app.
    return step_key.split("__")[-1] if step_key else job_name


def _failed_app(event: dg.DagsterEvent) -> str | None:
    """The first app a chain step's Failure names (its ``app_name`` metadata): one step runs a chain's apps."""
    user = getattr(event.event_specific_data, "user_failure_data", None)
    named = user.metadata.get("app_name") if user is not None else None
    return str(named.value).split(",")[0] if named is not None else None


def raise_run_alert(conn: DictConnection, instance: dg.DagsterInstance, run: dg.DagsterRun) -> alerts.Alert | None:
    """Count a failed run in its alert (``timeout`` when stopped for its max runtime, else
    ``failed``), once per run and type; None when the run was counted already."""
    events = _failure_events(instance, run.run_id)
    steps = [e for e in events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    app_type = (_failed_app(steps[0]) if steps else None) or _app_of(steps[0].step_key if steps else None, run.job_name)
    timeout = _timed_out(events)
    detail = _summary(events) or "run failed"
    if timeout:
        alert_type, message = TIMEOUT, f"{app_type} 运行超时(run {run.run_id[:8]}):{timeout}"
    else:
        alert_type, message = "failed", f"{app_type} 运行失败(run {run.run_id[:8]}):{detail}"
    event_id = run.tags.get(EVENT_ID_TAG)
    return alerts.raise_alert(
        conn,
        site_id=_site_of(run),
        app_type=app_type,
        alert_type=alert_type,
        message=message,
        dagster_run_id=run.run_id,
        event_id=int(event_id) if event_id and event_id.isdigit() else None,
        once_per_run=True,
    )


@dg.run_failure_sensor(
    name="ai_run_failure_alert_sensor",
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Raises an alert for every failed run (timeout when stopped for its max runtime): counted in "
    "the open alert of its site, app and type in biz.ai_alerts, once per run.",
)
def ai_run_failure_alert_sensor(context: dg.RunFailureSensorContext, postgres: PostgresResource) -> None:
    run = context.dagster_run
    with postgres.transaction() as conn:
        alert = raise_run_alert(conn, context.instance, run)
    if alert is None:
        context.log.info(f"run {run.run_id} was counted in its alert already")
    else:
        context.log.info(f"alert {alert.id} ({alert.occurrences} occurrence(s)) for failed run {run.run_id}")
