"""The events domain's Dagster objects: the inbox, DWS-completion, status and alert sensors, the
daily app2 prewarm and the daily retirement of quiet member partition keys, for
``zqyy_assets/definitions.py`` to merge."""

from __future__ import annotations

import dagster as dg

from zqyy_assets.core.schedules import ScheduleCron
from zqyy_assets.defs.events.dws_sensor import dws_completion_sensor
from zqyy_assets.defs.events.retirement import build_retirement_schedule, retire_member_partitions_job
from zqyy_assets.defs.events.schedules import build_prewarm_schedule
from zqyy_assets.defs.events.sensors import ai_events_sensor
from zqyy_assets.defs.events.status_sensors import (
    ai_event_status_sensor,
    ai_run_failure_alert_sensor,
)


def build_events_defs(
    *, prewarm_cron: ScheduleCron, prewarm_timezone: str, venue_timezone: str, shard_size: int = 100
) -> dg.Definitions:
    return dg.Definitions(
        sensors=[ai_events_sensor, dws_completion_sensor, ai_event_status_sensor, ai_run_failure_alert_sensor],
        schedules=[
            build_prewarm_schedule(prewarm_cron, prewarm_timezone, shard_size),
            build_retirement_schedule(venue_timezone),
        ],
        jobs=[retire_member_partitions_job],
    )
