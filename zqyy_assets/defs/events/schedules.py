"""``app2_daily_prewarm_schedule``: every day at 10:00 venue time, app2 for every active site.

The old system's cron did the same (10:00, all sites, 72 combinations each). One run covers
every active site and all 72 partitions; answers whose input did not change are cache hits,
so a day with no new DWS data costs no tokens. Time and zone are settings
(``PrewarmScheduleSettings``: ``APP2_PREWARM_CRON``, ``APP2_PREWARM_TIMEZONE``, default the
venue's zone), read by ``zqyy_assets/definitions.py`` when the code location loads.
"""

from __future__ import annotations

import dagster as dg

from zqyy_assets.core.tags import SITES_TAG
from zqyy_assets.defs.ai.jobs import app2_prewarm_job, app2_prewarm_run_request
from zqyy_assets.defs.resources import PostgresResource

PREWARM_SCHEDULE_NAME = "app2_daily_prewarm_schedule"
SCHEDULE_TRIGGER = "schedule"


def build_prewarm_schedule(cron: str, timezone: str) -> dg.ScheduleDefinition:
    """The daily prewarm at ``cron`` in ``timezone`` (an IANA zone)."""

    @dg.schedule(
        name=PREWARM_SCHEDULE_NAME,
        cron_schedule=cron,
        execution_timezone=timezone,
        job=app2_prewarm_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily app2 prewarm: all 72 time dimension x area partitions for every active site, one run.",
    )
    def app2_daily_prewarm_schedule(
        context: dg.ScheduleEvaluationContext, postgres: PostgresResource
    ) -> dg.RunRequest | dg.SkipReason:
        with postgres.connect() as conn:
            rows = conn.execute("SELECT site_id FROM ods.sites WHERE is_active ORDER BY site_id").fetchall()
        sites = [r["site_id"] for r in rows]
        if not sites:
            return dg.SkipReason("no active site to prewarm")
        moment = context.scheduled_execution_time
        request = app2_prewarm_run_request(trigger=SCHEDULE_TRIGGER, run_key=f"app2-prewarm-{moment:%Y-%m-%d}")
        return request.with_replaced_attrs(tags={**request.tags, SITES_TAG: ",".join(map(str, sites))})

    return app2_daily_prewarm_schedule
