"""The one Dagster entry point: every domain's definitions, bound to resources from the environment."""

import dagster as dg

from zqyy_assets.defs.ai.assets import ai_assets
from zqyy_assets.defs.ai.checks import ai_checks
from zqyy_assets.defs.ai.jobs import ai_jobs
from zqyy_assets.defs.ai.resources import LLMResource
from zqyy_assets.defs.dws.assets import (
    dws_assistant_member,
    dws_finance_area_daily,
    dws_member_profile,
)
from zqyy_assets.defs.dws.checks import dws_checks
from zqyy_assets.defs.events.automation import event_schedules, event_sensors
from zqyy_assets.defs.ods.assets import ods_assets
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource

defs = dg.Definitions(
    assets=[*ods_assets, dws_finance_area_daily, dws_member_profile, dws_assistant_member, *ai_assets],
    asset_checks=[*dws_checks, *ai_checks],
    jobs=ai_jobs,
    sensors=event_sensors,
    schedules=event_schedules,
    resources={
        "postgres": PostgresResource(database_url=dg.EnvVar("DATABASE_URL")),
        "venue_calendar": VenueCalendarResource(
            timezone=dg.EnvVar("VENUE_TIMEZONE"),
            business_day_cutoff_hours=dg.EnvVar.int("BUSINESS_DAY_CUTOFF_HOURS"),
        ),
        # Only the database is bound here; the provider (ZQYY_LLM_PROVIDER: auto/dashscope/offline),
        # the key, base URL, app ids and budgets are read from the environment when a run uses it.
        "llm": LLMResource(database_url=dg.EnvVar("DATABASE_URL")),
    },
)
