"""``retire_member_partitions_job`` (daily, ``member_partitions_retirement_schedule``): bounded
`members` / `assistant_members` partitions.

A key lives while its member had an inbox event in the last ``MEMBER_PARTITION_RETENTION_DAYS``
(default 90). The job pages through each definition's keys in Dagster's storage (by storage id,
so deleting as it goes skips nothing), asks Postgres which pages' members were quiet since the
cut-off (``core/member_keys.py``) and deletes those keys, a page's in one statement
(``instance/partitions.py``; Dagster's own API deletes one key a call). Nothing else changes:
the answers cached for a retired key stay in ``biz.ai_cache`` and the API serves them; the key's
materializations stay in Dagster's event log. A retired member's next event is new to the inbox sensor, which adds the
key back and runs the chain as for any new member. The counts (retired, kept, and keys not of
the member format, left alone) are the step's output metadata and a log line per definition.
"""

# No ``from __future__ import annotations``: Dagster checks the op's context annotation as a type.
from datetime import UTC, datetime, timedelta

import dagster as dg

from zqyy_assets.core import member_keys
from zqyy_assets.core.settings import MemberPartitionSettings
from zqyy_assets.core.tags import MAX_RUNTIME_TAG
from zqyy_assets.core.vocabulary import ASSISTANT_MEMBERS, MEMBERS
from zqyy_assets.defs.resources import PostgresResource
from zqyy_assets.instance.partitions import delete_dynamic_partitions

RETIREMENT_JOB_NAME = "retire_member_partitions_job"
RETIREMENT_CRON = "0 5 * * *"  # venue time: the quiet hour before the business day turns (06:00)
# Keys judged and deleted under one hold of the lock: the inbox sensor waits that long at most
# (a page's judgement and its one delete: under 30 ms here). Measured (bench/bench_retirement.py,
# 20,000 keys): 200 a page retired 4,800 keys/s, 1,000 a page 17,900 keys/s.
PAGE = 1000
# Past the instance's 900 s default: the first run on a backlog of quiet keys deletes many. A run
# stopped at its deadline loses nothing (deleted keys stay deleted); the next day goes on.
RETIREMENT_MAX_RUNTIME_S = 4 * 3600


class MemberPartitionsResource(dg.ConfigurableResource):
    """How long a member's partition keys live without an event (``MEMBER_PARTITION_RETENTION_DAYS``)."""

    retention_days: int = MemberPartitionSettings.model_fields["member_partition_retention_days"].default

    def settings(self) -> MemberPartitionSettings:
        """Validated (1 day or more), naming the variable when not."""
        return MemberPartitionSettings(member_partition_retention_days=self.retention_days)


def _retire(
    context: dg.OpExecutionContext, postgres: PostgresResource, partitions: str, since: datetime
) -> dict[str, int]:
    counts = {"retired": 0, "kept": 0, "unrecognised": 0}
    cursor: str | None = None
    while True:
        page = context.instance.get_paginated_dynamic_partitions(partitions, limit=PAGE, ascending=True, cursor=cursor)
        if page.results:
            with postgres.transaction() as conn:
                member_keys.hold_retirement_lock(conn)
                verdict = member_keys.judge_page(conn, partitions, page.results, since)
                delete_dynamic_partitions(context.instance, partitions, verdict.stale)
            counts["retired"] += len(verdict.stale)
            counts["kept"] += len(verdict.active) + len(verdict.unrecognised)
            counts["unrecognised"] += len(verdict.unrecognised)
        if not page.has_more:
            return counts
        cursor = page.cursor


@dg.op(
    out=dg.Out(dg.Nothing),
    description="Deletes the members / assistant_members partition keys whose member had no inbox event "
    "in the retention window (cached answers stay); output metadata: retired and kept per definition.",
)
def retire_member_partitions(
    context: dg.OpExecutionContext, postgres: PostgresResource, member_partitions: MemberPartitionsResource
) -> dg.Output[None]:
    days = member_partitions.settings().member_partition_retention_days
    since = datetime.now(UTC) - timedelta(days=days)
    metadata: dict[str, dg.RawMetadataValue] = {"retention_days": days, "no_event_since": since.isoformat()}
    for partitions in (MEMBERS, ASSISTANT_MEMBERS):
        counts = _retire(context, postgres, partitions, since)
        context.log.info(
            f"{partitions}: retired {counts['retired']:,}, kept {counts['kept']:,} "
            f"({counts['unrecognised']:,} not member keys, left alone); no event since {since:%Y-%m-%d %H:%M} UTC"
        )
        metadata.update({f"{partitions}_{what}": n for what, n in counts.items()})
    return dg.Output(None, metadata=metadata)


@dg.job(
    name=RETIREMENT_JOB_NAME,
    executor_def=dg.in_process_executor,
    tags={MAX_RUNTIME_TAG: str(RETIREMENT_MAX_RUNTIME_S)},
    description="Retires members / assistant_members partition keys quiet for MEMBER_PARTITION_RETENTION_DAYS.",
)
def retire_member_partitions_job() -> None:
    retire_member_partitions()


def build_retirement_schedule(timezone: str) -> dg.ScheduleDefinition:
    """The daily retirement at ``RETIREMENT_CRON`` in the venue's zone."""
    return dg.ScheduleDefinition(
        name="member_partitions_retirement_schedule",
        job=retire_member_partitions_job,
        cron_schedule=RETIREMENT_CRON,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Daily: retire the member partition keys whose member had no event in the retention window.",
    )
