"""Schedule crons: the check a cron must pass, and the admin's saved cron over the settings' default.

Dagster fixes a schedule's cron when the code location loads, so an admin's change
(``PATCH /api/admin/ai/triggers/{id}``) is saved in ``biz.schedule_crons`` (migration 0016)
and read by ``zqyy_assets/definitions.py`` each time the code location loads; the API then asks
Dagster to reload the location. Without Dagster: the API checks a cron with ``croniter``
6.0.0, the release Dagster 1.13 vendors for its own check, plus the rules Dagster adds (five
fields; no 30th or 31st of February) and one of ours (it fires within five years), so a cron
the API accepts is one Dagster loads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from croniter import CroniterBadCronError, CroniterBadDateError, croniter
from psycopg.rows import dict_row

log = logging.getLogger(__name__)

PREWARM_SCHEDULE_NAME = "app2_daily_prewarm_schedule"
# The schedules whose cron an admin may change (the others' are fixed in code).
EDITABLE_SCHEDULES = frozenset({PREWARM_SCHEDULE_NAME})

FIELDS = "minute hour day-of-month month day-of-week"
LOAD_TIMEOUT_S = 5  # connecting, and reading, when the code location loads

READ_SQL = "SELECT cron_expression, updated_by, updated_at FROM biz.schedule_crons WHERE schedule_name = %s"
SAVE_SQL = """
INSERT INTO biz.schedule_crons (schedule_name, cron_expression, updated_by) VALUES (%s, %s, %s)
ON CONFLICT (schedule_name) DO UPDATE
  SET cron_expression = EXCLUDED.cron_expression, updated_by = EXCLUDED.updated_by, updated_at = now()
"""


def check_cron(expression: str) -> str:
    """The cron with single spaces between its five fields; ValueError saying what is wrong."""
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(f"a cron has five fields ({FIELDS}) separated by spaces, got {len(fields)}")
    cron = " ".join(fields)
    if not croniter.is_valid(cron):
        raise ValueError(f"{cron!r} is not a valid cron expression ({FIELDS})")
    expanded, *_ = croniter.expand(cron)
    if len(expanded) != 5:
        raise ValueError(f"{cron!r} is not a five-field cron ({FIELDS})")
    if expanded[3] == [2] and len(expanded[2]) == 1 and expanded[2][0] in (30, 31):
        raise ValueError(f"{cron!r} never fires: February has no 30th or 31st")
    try:
        croniter(cron, datetime(2000, 1, 1), max_years_between_matches=5).get_next(datetime)
    except (CroniterBadDateError, CroniterBadCronError):
        raise ValueError(f"{cron!r} never fires (no such date within five years)") from None
    return cron


def next_fire(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time after ``after`` the cron fires, reading it in ``timezone`` (an aware datetime).

    croniter walks naive local time (with an aware start it skips DST changes wrongly); each
    local time is then placed in the zone."""
    zone = ZoneInfo(timezone)
    local = after.astimezone(zone).replace(tzinfo=None)
    moment: datetime = croniter(cron, local).get_next(datetime)
    while True:
        aware = moment.replace(tzinfo=zone)
        if aware > after:
            return aware
        moment = croniter(cron, moment + timedelta(seconds=1)).get_next(datetime)  # a fold: the same local time again


@dataclass(frozen=True)
class ScheduleCron:
    """The cron a schedule loads with, and where it came from (shown in Dagster's UI)."""

    cron: str
    source: str


def load_cron(database_url: str | None, schedule_name: str, default: str, default_name: str) -> ScheduleCron:
    """The admin's saved cron for the schedule, else ``default`` (the setting ``default_name``).

    Read when the code location loads. The location must load even when the database cannot be
    read or the saved cron is no longer valid: then the default, with a warning in the log."""
    if not database_url:
        return ScheduleCron(default, f"{default_name} (no DATABASE_URL to read an admin's cron from)")
    try:
        with psycopg.connect(
            database_url,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=LOAD_TIMEOUT_S,
            options=f"-c statement_timeout={LOAD_TIMEOUT_S * 1000}",
        ) as conn:
            row: dict[str, Any] | None = conn.execute(READ_SQL, (schedule_name,)).fetchone()
    except psycopg.Error as exc:
        log.warning("could not read the saved cron of %s, using %s: %s", schedule_name, default_name, exc)
        return ScheduleCron(default, f"{default_name} (the saved cron could not be read: {type(exc).__name__})")
    if row is None:
        return ScheduleCron(default, default_name)
    try:
        cron = check_cron(row["cron_expression"])
    except ValueError as exc:
        log.warning("the saved cron of %s is not valid, using %s: %s", schedule_name, default_name, exc)
        return ScheduleCron(default, f"{default_name} (the saved cron {row['cron_expression']!r} is not valid)")
    return ScheduleCron(cron, f"set by {row['updated_by']} at {row['updated_at']:%Y-%m-%d %H:%M:%S %z}")
