"""The one Dagster entry point: every domain's definitions, merged, with the code location's settings.

Settings are read here and only here, when Dagster loads the code location (``@dg.definitions``
defers it from import to load): the venue's zone shapes the DWS business-date partitions and
the prewarm schedule, which Dagster needs as values (the prewarm's cron is the one an admin saved
in Postgres, else the setting: see ``core/schedules.py``; the API reloads the location after a
change); resources are bound from ``dg.EnvVar`` so
the Dagster UI shows where each value comes from and reads it when a run starts.
"""

import dagster as dg

from zqyy_assets.core.schedules import PREWARM_SCHEDULE_NAME, load_cron
from zqyy_assets.core.settings import (
    DatabaseSettings,
    MemberPartitionSettings,
    PrewarmScheduleSettings,
    VenueSettings,
)
from zqyy_assets.defs.ai.definitions import build_ai_defs
from zqyy_assets.defs.ai.resources import llm_resource_from_env
from zqyy_assets.defs.dws.definitions import build_dws_defs
from zqyy_assets.defs.events.definitions import build_events_defs
from zqyy_assets.defs.events.retirement import MemberPartitionsResource
from zqyy_assets.defs.ods.definitions import build_ods_defs
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource


def venue_calendar(venue: VenueSettings) -> VenueCalendarResource:
    """The venue's calendar bound from its variables; one left unset keeps the settings' default
    (Dagster has no optional ``EnvVar``), the same value the partitions and schedule got."""
    set_ = venue.model_fields_set
    return VenueCalendarResource(
        timezone=dg.EnvVar("VENUE_TIMEZONE") if "venue_timezone" in set_ else venue.venue_timezone,
        business_day_cutoff_hours=dg.EnvVar.int("BUSINESS_DAY_CUTOFF_HOURS")
        if "business_day_cutoff_hours" in set_
        else venue.business_day_cutoff_hours,
    )


def member_partitions(settings: MemberPartitionSettings) -> MemberPartitionsResource:
    """The retention bound from its variable when set (validated when the location loads)."""
    if "member_partition_retention_days" in settings.model_fields_set:
        return MemberPartitionsResource(retention_days=dg.EnvVar.int("MEMBER_PARTITION_RETENTION_DAYS"))
    return MemberPartitionsResource(retention_days=settings.member_partition_retention_days)


def resources(venue: VenueSettings, members: MemberPartitionSettings) -> dict[str, dg.ConfigurableResource]:
    return {
        "postgres": PostgresResource(database_url=dg.EnvVar("DATABASE_URL")),
        "venue_calendar": venue_calendar(venue),
        "member_partitions": member_partitions(members),
        # Every LLM setting: provider, key (secret), base URL, app ids, budgets, timeouts.
        "llm": llm_resource_from_env(),
    }


@dg.definitions
def defs() -> dg.Definitions:
    venue = VenueSettings()
    prewarm = PrewarmScheduleSettings()
    members = MemberPartitionSettings()  # a retention of 0 or below stops the load here, naming the variable
    prewarm_cron = load_cron(
        DatabaseSettings().database_url, PREWARM_SCHEDULE_NAME, prewarm.app2_prewarm_cron, "APP2_PREWARM_CRON"
    )
    return dg.Definitions.merge(
        build_ods_defs(),
        build_dws_defs(venue_timezone=venue.venue_timezone),
        build_ai_defs(),
        build_events_defs(
            prewarm_cron=prewarm_cron,
            prewarm_timezone=prewarm.timezone(venue),
            shard_size=prewarm.app2_prewarm_shard_size,
            venue_timezone=venue.venue_timezone,
        ),
        dg.Definitions(resources=resources(venue, members)),
    )
