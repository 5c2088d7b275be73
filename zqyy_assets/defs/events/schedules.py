"""``app2_daily_prewarm_schedule``: every day at 10:00 venue time, app2 for every active site.

The old system's cron did the same (10:00, all sites, 72 combinations each). The active sites
are split into shards of ``APP2_PREWARM_SHARD_SIZE`` (``core/prewarm_shards.py``), one run per
shard, each all 72 partitions for its sites; answers whose input did not change are cache hits,
so a day with no new DWS data costs no tokens. The zone is a setting
(``APP2_PREWARM_TIMEZONE``, default the venue's); the cron is the one an admin saved
(``biz.schedule_crons``, ``PATCH /api/admin/ai/triggers/{id}``), else ``APP2_PREWARM_CRON``,
read by ``zqyy_assets/definitions.py`` each time the code location loads
(:func:`zqyy_assets.core.schedules.load_cron`).
"""

from __future__ import annotations

import dagster as dg

from zqyy_assets.core.schedules import PREWARM_SCHEDULE_NAME, ScheduleCron
from zqyy_assets.defs.ai.jobs import app2_prewarm_job, app2_prewarm_shard_requests
from zqyy_assets.defs.resources import PostgresResource

SCHEDULE_TRIGGER = "schedule"


def build_prewarm_schedule(cron: ScheduleCron, timezone: str, shard_size: int = 100) -> dg.ScheduleDefinition:
    """The daily prewarm at ``cron`` in ``timezone`` (an IANA zone), one run per ``shard_size``
    sites; where the cron came from is the schedule's metadata, so Dagster's UI shows it."""
    if shard_size < 1:
        raise ValueError(f"APP2_PREWARM_SHARD_SIZE must be at least 1, got {shard_size}")

    @dg.schedule(
        name=PREWARM_SCHEDULE_NAME,
        cron_schedule=cron.cron,
        execution_timezone=timezone,
        metadata={"cron_source": cron.source, "shard_size": shard_size},
        job=app2_prewarm_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily app2 prewarm: all 72 time dimension x area partitions for every active site, "
        "one run per shard of sites (APP2_PREWARM_SHARD_SIZE).",
    )
    def app2_daily_prewarm_schedule(
        context: dg.ScheduleEvaluationContext, postgres: PostgresResource
    ) -> list[dg.RunRequest] | dg.SkipReason:
        with postgres.connect() as conn:
            rows = conn.execute("SELECT site_id FROM ods.sites WHERE is_active ORDER BY site_id").fetchall()
        sites = [r["site_id"] for r in rows]
        if not sites:
            return dg.SkipReason("no active site to prewarm")
        moment = context.scheduled_execution_time
        requests = app2_prewarm_shard_requests(
            sites, shard_size=shard_size, trigger=SCHEDULE_TRIGGER, run_key=f"app2-prewarm-{moment:%Y-%m-%d}"
        )
        context.log.info(f"app2 prewarm: {len(sites)} active site(s) in {len(requests)} run(s) of <= {shard_size}")
        return requests

    return app2_daily_prewarm_schedule
