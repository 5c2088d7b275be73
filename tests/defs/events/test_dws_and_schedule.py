"""DWS completion writes dws_completed events for the affected sites; the 10:00 schedule
prewarms app2 for every active site in one run."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from tests.defs.events.conftest import code_location, tick
from zqyy_assets.core import db
from zqyy_assets.core.business_date import business_date
from zqyy_assets.core.partition_keys import app2_full_range_tags
from zqyy_assets.core.schedules import PREWARM_SCHEDULE_NAME, SAVE_SQL, ScheduleCron
from zqyy_assets.definitions import defs
from zqyy_assets.defs.events.dws_sensor import dws_completion_sensor
from zqyy_assets.defs.events.schedules import build_prewarm_schedule
from zqyy_assets.defs.resources import VenueCalendarResource
from zqyy_assets.tools.dws_refresh import materialize_dws

# Site 2 is active but sold nothing in March; site 3 sold but is closed.
MORE_SITES_SQL = """
INSERT INTO ods.sites (site_id, name) VALUES (2, '第二门店');
INSERT INTO ods.sites (site_id, name, is_active) VALUES (3, '停业门店', false);
INSERT INTO ods.areas VALUES (3, 'vip', 'VIP');
INSERT INTO ods.tables VALUES (3, 51, 'vip', 'V9', 2.00);
INSERT INTO ods.settlements (site_id, settlement_id, member_id, area_code, table_id, started_at, ended_at,
    settled_at, table_minutes, table_fee, assistant_fee, goods_amount, discount, total, pay_method) VALUES
 (3, 1, NULL, 'vip', 51, '2026-03-02 20:00+08', '2026-03-02 21:00+08', '2026-03-02 21:00+08',
  60, 120.00, 0, 0, 0, 120.00, '现金');
"""


def dws_tick(instance, postgres, cursor=None, calendar=None):
    resources = {"postgres": postgres, "venue_calendar": calendar or VenueCalendarResource()}
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as context:
        return dws_completion_sensor.evaluate_tick(context)


def dws_events(db_url: str) -> list[dict]:
    with db.connect(db_url) as conn:
        return conn.execute("SELECT * FROM biz.ai_events WHERE event_type = 'dws_completed' ORDER BY id").fetchall()


def test_dws_materialization_writes_one_event_per_affected_site(instance, postgres, venue, db_url) -> None:
    with db.transaction(db_url) as conn:
        conn.execute(MORE_SITES_SQL)
    assert dws_tick(instance, postgres).skip_message  # nothing materialized yet

    run = materialize_dws(instance, db_url, date(2026, 3, 2), date(2026, 3, 3)).dagster_run
    first = dws_tick(instance, postgres)

    events = dws_events(db_url)
    assert [(e["site_id"], e["source"], e["status"]) for e in events] == [(1, "dws_sensor", "pending")]
    assert events[0]["payload"] == {"dws_run_id": run.run_id, "first_date": "2026-03-02", "last_date": "2026-03-03"}

    # The same materializations read again (a tick whose cursor was lost) insert nothing new.
    again = dws_tick(instance, postgres)
    assert again.cursor == first.cursor
    assert len(dws_events(db_url)) == 1
    assert dws_tick(instance, postgres, first.cursor).skip_message

    # The inbox sensor turns the event into the app2 prewarm run.
    (request,) = tick(instance, postgres).run_requests
    assert (request.job_name, request.tags["zqyy/trigger"], request.tags["zqyy/site_ids"]) == (
        "app2_prewarm_job",
        "dws_completed",
        "1",
    )


def schedule_at(instance, postgres, moment: datetime, shard_size: int = 100):
    with dg.build_schedule_context(
        instance=instance, scheduled_execution_time=moment, resources={"postgres": postgres}
    ) as context:
        schedule = build_prewarm_schedule(ScheduleCron("0 10 * * *", "test"), "Asia/Shanghai", shard_size)
        return schedule.evaluate_tick(context)


def test_daily_schedule_requests_one_run_per_shard(instance, postgres, venue, db_url) -> None:
    with db.transaction(db_url) as conn:
        conn.execute(MORE_SITES_SQL)
    moment = datetime(2026, 3, 3, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))

    requests = schedule_at(instance, postgres, moment, shard_size=1).run_requests

    assert [(r.run_key, r.tags["zqyy/site_ids"], r.tags["zqyy/shard"]) for r in requests] == [
        ("app2-prewarm-2026-03-03-shard-1-of-2", "1", "1/2"),
        ("app2-prewarm-2026-03-03-shard-2-of-2", "2", "2/2"),
    ]
    assert {r.job_name for r in requests} == {"app2_prewarm_job"}
    for request in requests:
        for tag, value in app2_full_range_tags().items():
            assert request.tags[tag] == value
    with pytest.raises(ValueError, match="APP2_PREWARM_SHARD_SIZE must be at least 1, got 0"):
        build_prewarm_schedule(ScheduleCron("0 10 * * *", "test"), "Asia/Shanghai", 0)


def test_daily_schedule_prewarms_every_active_site_in_one_run(instance, postgres, venue, db_url, monkeypatch) -> None:
    with db.transaction(db_url) as conn:
        conn.execute(MORE_SITES_SQL)
    moment = datetime(2026, 3, 3, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))

    (request,) = schedule_at(instance, postgres, moment).run_requests

    assert request.job_name == "app2_prewarm_job"
    assert request.run_key == "app2-prewarm-2026-03-03"
    assert request.tags["zqyy/trigger"] == "schedule"
    assert request.tags["zqyy/site_ids"] == "1,2"
    for tag, value in app2_full_range_tags().items():
        assert request.tags[tag] == value
    # The request's config is valid for the job as deployed (resources bound from the environment).
    for name, value in {
        "DATABASE_URL": db_url,
        "VENUE_TIMEZONE": "Asia/Shanghai",
        "BUSINESS_DAY_CUTOFF_HOURS": "6",
    }.items():
        monkeypatch.setenv(name, value)
    assert dg.validate_run_config(code_location().resolve_job_def(request.job_name), request.run_config)


def test_schedule_skips_when_no_site_is_active(instance, postgres, db_url) -> None:
    moment = datetime(2026, 3, 3, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))

    result = schedule_at(instance, postgres, moment)

    assert result.run_requests == [] and "no active site" in result.skip_message


def loaded_schedule(monkeypatch, **env: str) -> dg.ScheduleDefinition:
    """The prewarm schedule as the code location builds it when loaded with this environment."""
    for name in ("APP2_PREWARM_CRON", "APP2_PREWARM_TIMEZONE", "VENUE_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return defs().resolve_schedule_def(PREWARM_SCHEDULE_NAME)


def test_schedule_time_and_zone_are_settings(monkeypatch) -> None:
    default = loaded_schedule(monkeypatch)
    assert (default.cron_schedule, default.execution_timezone) == ("0 10 * * *", "Asia/Shanghai")
    venue = loaded_schedule(monkeypatch, VENUE_TIMEZONE="Asia/Kuala_Lumpur")
    assert venue.execution_timezone == "Asia/Kuala_Lumpur"
    own = loaded_schedule(
        monkeypatch,
        VENUE_TIMEZONE="Asia/Kuala_Lumpur",
        APP2_PREWARM_TIMEZONE="Asia/Hong_Kong",
        APP2_PREWARM_CRON="30 9 * * *",
    )
    assert (own.cron_schedule, own.execution_timezone) == ("30 9 * * *", "Asia/Hong_Kong")


def test_the_loaded_schedule_runs_at_the_admins_saved_cron(monkeypatch, db_url) -> None:
    """What Dagster's daemon and UI get each time the code location loads: the saved cron,
    the source shown as the schedule's metadata."""
    assert loaded_schedule(monkeypatch, DATABASE_URL=db_url).cron_schedule == "0 10 * * *"
    with db.transaction(db_url) as conn:
        conn.execute(SAVE_SQL, (PREWARM_SCHEDULE_NAME, "30 9 * * 1-5", "店长"))
    schedule = loaded_schedule(monkeypatch, DATABASE_URL=db_url, APP2_PREWARM_CRON="0 11 * * *")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 9 * * 1-5", "Asia/Shanghai")
    assert schedule.metadata["cron_source"].value.startswith("set by 店长 at ")


def test_dws_event_business_date_is_the_venues(instance, postgres, venue, db_url) -> None:
    # Pago Pago (UTC-11) with the day turning at 23:00 is 34 h behind UTC, 36 h behind the default
    # venue (Shanghai, 06:00): its business date is always one or two days earlier.
    materialize_dws(instance, db_url, date(2026, 3, 2), date(2026, 3, 3))
    far_west = VenueCalendarResource(timezone="Pacific/Pago_Pago", business_day_cutoff_hours=23)
    before = datetime.now(UTC)
    dws_tick(instance, postgres, calendar=far_west)
    after = datetime.now(UTC)
    [event] = dws_events(db_url)
    assert event["biz_date"] in {
        business_date(before, "Pacific/Pago_Pago", 23),
        business_date(after, "Pacific/Pago_Pago", 23),
    }
    assert event["biz_date"] < business_date(before, "Asia/Shanghai", 6)
