"""``app2_daily_prewarm_schedule``: every day at 10:00 venue time, app2 for every active site.

The old system's cron did the same (10:00, all sites, 72 combinations each). One run covers
every active site and all 72 partitions; answers whose input did not change are cache hits,
so a day with no new DWS data costs no tokens. The zone is a setting
(``APP2_PREWARM_TIMEZONE``, default the venue's); the cron is the one an admin saved
(``biz.schedule_crons``, ``PATCH /api/admin/ai/triggers/{id}``), else ``APP2_PREWARM_CRON``,
read by ``zqyy_assets/definitions.py`` each time the code location loads
(:func:`zqyy_assets.core.schedules.load_cron`).
"""

from __future__ import annotations

import dagster as dg

from zqyy_assets.core.schedules import PREWARM_SCHEDULE_NAME, ScheduleCron
from zqyy_assets.core.tags import SITES_TAG
from zqyy_assets.defs.ai.jobs import app2_prewarm_job, app2_prewarm_run_request
from zqyy_assets.defs.resources import PostgresResource

SCHEDULE_TRIGGER = "schedule"


def build_prewarm_schedule(cron: ScheduleCron, timezone: str) -> dg.ScheduleDefinition:
    """The daily prewarm at ``cron`` in ``timezone`` (an IANA zone); where the cron came from is
    the schedule's metadata, so Dagster's UI shows it."""

    @dg.schedule(
        name=PREWARM_SCHEDULE_NAME,
        cron_schedule=cron.cron,
        execution_timezone=timezone,
        metadata={"cron_source": cron.source},
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
