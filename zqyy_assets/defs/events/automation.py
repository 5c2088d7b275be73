"""The sensors and schedules of this domain, for ``zqyy_assets.definitions``."""

from zqyy_assets.defs.events.dws_sensor import dws_completion_sensor
from zqyy_assets.defs.events.schedules import app2_daily_prewarm_schedule
from zqyy_assets.defs.events.sensors import ai_events_sensor
from zqyy_assets.defs.events.status_sensors import (
    ai_event_status_sensor,
    ai_run_failure_alert_sensor,
)

event_sensors = [ai_events_sensor, dws_completion_sensor, ai_event_status_sensor, ai_run_failure_alert_sensor]
event_schedules = [app2_daily_prewarm_schedule]
