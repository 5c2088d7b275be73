"""Jobs over the AI assets, and the app2 prewarm's run request (the 10:00 schedule sends it).

One run per event for a whole chain (not one per app), and the 72 app2 partitions as one run:
a run launch costs seconds of CPU on this machine. Jobs run in process (one process per run,
no second one per step).

- ``app2_prewarm_job``: app2_finance; ``app2_prewarm_run_request`` asks for all 72 partitions
  in one run (a partition range: first key .. last key is the whole 8 x 9 rectangle);
  ``app2_prewarm_shard_requests`` one such run per shard of the sites (the daily schedule).
- ``consumption_chain_job`` [members]: app3 -> app8 -> app7.
- ``consumption_assistant_chain_job`` [assistant_members]: app4 -> app5, for a consumption an
  assistant served (a second run: the two chains have different partitions).
- ``note_chain_job`` [members]: app6 -> app8.
- ``task_chain_job`` [assistant_members]: app4 -> app5.

The member chain jobs leave out the ``*_answers_valid`` checks (full scans, run them on
demand); app2's coverage check and every app's grounded-numbers check (``*_grounded``, over the
run's own answers, whose verdicts were computed as they were stored) run inside the asset.

A run request for a dynamic partition needs the key to exist first: a sensor returns
``dg.SensorResult(run_requests=[...], dynamic_partitions_requests=[
members_partitions.build_add_request([key])])``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg

from zqyy_assets.core.partition_keys import app2_full_range_tags
from zqyy_assets.core.prewarm_shards import shard_sites
from zqyy_assets.core.tags import FORCE_TAG, MAX_RUNTIME_TAG, SHARD_TAG, SITES_TAG, TRIGGER_TAG
from zqyy_assets.defs.ai.assets import (
    DEFAULT_CONCURRENCY,
    app2_finance,
    app3_clue,
    app4_analysis,
    app5_tactics,
    app6_note,
    app7_customer,
    app8_consolidation,
)
from zqyy_assets.defs.ai.checks import APP2_COVERAGE_CHECK, grounding_check_name
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource

# The app2 prewarm's deadline (a member chain's is the instance's 900 s, dagster.yaml). One run
# answers 72 partitions for every active site: measured, 20 sites x 72 calls took 28 s at 1 s a
# call and concurrency 64; at Bailian's 5-10 s a call that is ~10 s a site, so 3 h holds about
# 1,000 sites (most answers are memo hits on a day without new data). Raise it with the chain.
APP2_PREWARM_MAX_RUNTIME_S = 3 * 3600


def _assets(*assets: dg.AssetsDefinition | dg.AssetKey) -> dg.AssetSelection:
    """The assets with their grounded-numbers checks (evaluated in the step), not the other checks."""
    keys = [a.key if isinstance(a, dg.AssetsDefinition) else a for a in assets]
    grounding = [dg.AssetCheckKey(key, grounding_check_name(key.to_user_string())) for key in keys]
    return dg.AssetSelection.assets(*assets).without_checks() | dg.AssetSelection.checks(*grounding)


app2_prewarm_job = dg.define_asset_job(
    "app2_prewarm_job",
    selection=_assets(app2_finance) | dg.AssetSelection.checks(dg.AssetCheckKey(app2_finance.key, APP2_COVERAGE_CHECK)),
    executor_def=dg.in_process_executor,
    tags={MAX_RUNTIME_TAG: str(APP2_PREWARM_MAX_RUNTIME_S)},
    description="App2 finance insights for every active site; run all 72 partitions as one run "
    "(app2_prewarm_run_request) or any single partition to re-run it alone.",
)
consumption_chain_job = dg.define_asset_job(
    "consumption_chain_job",
    selection=_assets(app3_clue, app8_consolidation, app7_customer),
    executor_def=dg.in_process_executor,
    description="A member's consumption: App3 -> App8 -> App7 (partition '{site_id}-{member_id}').",
)
consumption_assistant_chain_job = dg.define_asset_job(
    "consumption_assistant_chain_job",
    selection=_assets(app4_analysis, app5_tactics),
    executor_def=dg.in_process_executor,
    description="A consumption an assistant served: App4 -> App5 (partition '{site_id}-{assistant_id}_{member_id}').",
)
note_chain_job = dg.define_asset_job(
    "note_chain_job",
    selection=_assets(app6_note, app8_consolidation),
    executor_def=dg.in_process_executor,
    description="A note about a member: App6 -> App8 (partition '{site_id}-{member_id}').",
)
task_chain_job = dg.define_asset_job(
    "task_chain_job",
    selection=_assets(app4_analysis, app5_tactics),
    executor_def=dg.in_process_executor,
    description="A task assigned to an assistant for a member: App4 -> App5 "
    "(partition '{site_id}-{assistant_id}_{member_id}').",
)

ai_jobs = [app2_prewarm_job, consumption_chain_job, consumption_assistant_chain_job, note_chain_job, task_chain_job]


# ------------------------------------------------------------------------------ run requests


def run_tags(trigger: str, *, force: bool = False, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    tags = {TRIGGER_TAG: trigger, **(extra or {})}
    if force:
        tags[FORCE_TAG] = "true"
    return tags


def app2_prewarm_run_request(
    *, trigger: str, run_key: str | None = None, force: bool = False, concurrency: int | None = None
) -> dg.RunRequest:
    """All 72 app2 partitions for all active sites as ONE run of ``app2_prewarm_job``."""
    run_config: dict[str, Any] = {}
    if concurrency is not None:
        run_config = {"ops": {"app2_finance": {"config": {"concurrency": concurrency}}}}
    return dg.RunRequest(
        run_key=run_key,
        job_name=app2_prewarm_job.name,
        run_config=run_config,
        tags={**app2_full_range_tags(), **run_tags(trigger, force=force)},
    )


def app2_prewarm_shard_requests(
    site_ids: list[int], *, shard_size: int, trigger: str, run_key: str | None = None, force: bool = False
) -> list[dg.RunRequest]:
    """The prewarm of these sites as one run per shard (``core/prewarm_shards.py``): each is all
    72 partitions for its sites, tagged with them and with its shard; run keys ``{run_key}``
    for a single shard, else ``{run_key}-shard-{i}-of-{n}``."""
    shards = shard_sites(site_ids, shard_size)
    requests = []
    for shard in shards:
        request = app2_prewarm_run_request(
            trigger=trigger,
            force=force,
            run_key=None if run_key is None or len(shards) == 1 else f"{run_key}-shard-{shard.index}-of-{shard.count}",
        )
        if run_key is not None and len(shards) == 1:
            request = request.with_replaced_attrs(run_key=run_key)
        tags = {**request.tags, SITES_TAG: ",".join(map(str, shard.site_ids)), SHARD_TAG: shard.label}
        requests.append(request.with_replaced_attrs(tags=tags))
    return requests


# ------------------------------------------------------------------------- in-process helper


def materialize_app2_prewarm(
    instance: dg.DagsterInstance,
    *,
    database_url: str,
    llm: Any,
    trigger: str = "manual",
    force: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
    as_of_date: str | None = None,
    calendar: VenueCalendarResource | None = None,
    sites: list[int] | None = None,
) -> dg.ExecuteInProcessResult:
    """The 72-partition prewarm as one in-process run (the benchmark, the demo, tests); ``sites``
    narrows it to a shard's sites."""
    config: dict[str, Any] = {"concurrency": concurrency}
    if as_of_date:
        config["as_of_date"] = as_of_date
    if sites is not None:
        config["site_ids"] = sites
    return dg.materialize(
        [app2_finance],
        instance=instance,
        resources={
            "llm": llm,
            "postgres": PostgresResource(database_url=database_url),
            "venue_calendar": calendar or VenueCalendarResource(),
        },
        run_config={"ops": {"app2_finance": {"config": config}}},
        tags={**app2_full_range_tags(), **run_tags(trigger, force=force)},
        raise_on_error=False,
    )
