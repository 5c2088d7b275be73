"""``app2_finance`` [time_dimension x area, 72]: every partition answers for every active site.

A range of partitions (all 72 in a prewarm) runs as one run: the prompts are built for all
sites, then the calls go out concurrently (``concurrency``, default 8). Each answer is cached
the moment it validates. A partition is materialized only when every site's answer for it is in
the cache; when some failed, the step fails after materializing the others, naming what failed,
so the UI shows exactly those partitions as failed and each can be re-run alone.

Before asking, the run plans its budget (``core/prewarm_budget.py``): what the budget cannot pay
for is skipped with reason ``budget``, and what it will ask is reserved for the run, so that
shards planning at the same moment do not together overrun it; the step releases its
reservation when it ends, failed or not.
"""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations at
# definition time and cannot resolve them from strings.
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import dagster as dg
import psycopg

from zqyy_assets.core import answering, cache, prewarm_budget, prompts
from zqyy_assets.core.answer_runs import PartitionProgress, active_sites, failure_table
from zqyy_assets.core.answering import Ask, Outcome, RunInfo, summarise
from zqyy_assets.core.llm.inflight import CapSnapshot
from zqyy_assets.core.partition_keys import App2Key, parse_app2_key
from zqyy_assets.core.prewarm_budget import BUDGET_SKIP_REASON
from zqyy_assets.core.settings import PrewarmScheduleSettings
from zqyy_assets.core.tags import FAILED_PARTITIONS_METADATA, MAX_RUNTIME_TAG
from zqyy_assets.defs.ai import checks
from zqyy_assets.defs.ai.config import App2Config, requested_sites, run_info
from zqyy_assets.defs.ai.metadata import as_metadata, sites_preview, summary_metadata
from zqyy_assets.defs.ai.partitions import app2_partitions
from zqyy_assets.defs.ai.resources import LLMResource
from zqyy_assets.defs.dws.assets import dws_finance_area_daily
from zqyy_assets.defs.resources import PostgresResource


@dg.asset(
    group_name="ai",
    partitions_def=app2_partitions,
    # A range of partitions (all 72 in a prewarm) is one run with bounded concurrency inside.
    backfill_policy=dg.BackfillPolicy.single_run(),
    # Materializations are yielded per partition, only for partitions whose answers all landed.
    output_required=False,
    # Each window reads every business date it spans: any app2 partition depends on all of the DWS days.
    deps=[dg.AssetDep(dws_finance_area_daily, partition_mapping=dg.AllPartitionMapping()), "ods_sites", "ods_areas"],
    check_specs=[
        dg.AssetCheckSpec(
            checks.APP2_COVERAGE_CHECK,
            asset="app2_finance",
            description="Each active site with finance figures has a valid answer for all 72 partitions.",
        ),
        checks.grounding_check_spec("app2_finance"),
    ],
    pool="llm",
    kinds={"python", "postgres"},
    description="Finance insights per time dimension x area, for every active site. Area 'all' asks the "
    "whole-site app (app2_finance), the other areas the area app (app2a_finance_area). Cache target id: "
    "'{time_dimension}__{area}'.",
)
def app2_finance(
    context: dg.AssetExecutionContext, config: App2Config, llm: LLMResource, postgres: PostgresResource
) -> Any:
    try:
        yield from _answer_partitions(context, config, llm, postgres)
    finally:  # success or failure: what the run reserved and did not spend is the others' again
        _release_reservation(context, postgres)


def _answer_partitions(
    context: dg.AssetExecutionContext, config: App2Config, llm: LLMResource, postgres: PostgresResource
) -> Iterator[Any]:
    started = time.perf_counter()
    keys = [parse_app2_key(k) for k in context.partition_keys]
    run = run_info(context, config, llm)
    as_of = date.fromisoformat(config.as_of_date) if config.as_of_date else None
    wanted = requested_sites(context, config)
    finances: dict[int, prompts.SiteFinance | None] = {}
    with postgres.connect() as conn:
        sites = [s for s in active_sites(conn) if wanted is None or s["site_id"] in wanted]
        if wanted is not None and len(sites) < len(wanted):
            context.log.warning(
                f"app2: sites {sorted(wanted - {s['site_id'] for s in sites})} are not active; not asked"
            )
        for site in sites:
            finances[site["site_id"]] = prompts.load_site_finance(conn, site["site_id"], as_of)

    # Partition-major order: calls go out in this order, so partitions finish one after another
    # and each is materialized while later ones are still being asked. Prompts are built lazily:
    # the first calls leave while the rest are being built.
    progress: PartitionProgress[App2Key] = PartitionProgress(keys)
    cap_before = _cap(llm, run.provider)
    budget_note, over_budget = _plan_budget(context, postgres, llm, run, keys, finances)
    context.log.info(f"app2 {budget_note}")
    for key in keys:
        for site_id, finance in finances.items():
            if finance is None:
                reason = "no DWS finance figures for the site"
                progress.skip(key, Outcome(site_id, key.app_name, key.target_id, "skipped", reason=reason))
            elif (site_id, key) in over_budget:
                progress.skip(key, Outcome(site_id, key.app_name, key.target_id, "skipped", reason=BUDGET_SKIP_REASON))
            else:
                progress.expect(key)

    def asks() -> Iterator[Ask]:
        for key in keys:
            for site_id, finance in finances.items():
                if finance is not None and (site_id, key) not in over_budget:
                    refs = prompts.References()
                    yield Ask(
                        site_id=site_id,
                        app_name=key.app_name,
                        target_id=key.target_id,
                        prompt=prompts.build_app2_prompt(finance, key.time_dimension, key.area, refs=refs),
                        prompt_version=prompts.PROMPT_VERSIONS[key.app_name],
                        references=refs.as_json(),
                    )

    context.log.info(
        f"app2: {len(keys)} partition(s) x {len(sites)} active site(s): {progress.expected()} answers to get, "
        f"{sum(f is None for f in finances.values())} site(s) without figures skipped; provider {run.provider}, "
        f"concurrency {config.concurrency}, force {run.force}"
    )

    key_by_target = {key.target_id: key for key in keys}
    failed_keys: list[App2Key] = []
    budget_keys: list[App2Key] = []  # some site's answer left for another day: not materialized

    def finish(key: App2Key) -> dg.AssetMaterialization | None:
        if progress.failed(key):
            failed_keys.append(key)
            return None
        if any(o.reason == BUDGET_SKIP_REASON for o in progress.outcomes[key]):
            budget_keys.append(key)
            return None
        return dg.AssetMaterialization(
            asset_key=context.asset_key,
            partition=str(key.partition_key),
            metadata={
                **summary_metadata(progress.outcomes[key]),
                **as_metadata(checks.grounding_figures(progress.outcomes[key])),
                "app": dg.MetadataValue.text(key.app_name),
                "target_id": dg.MetadataValue.text(key.target_id),
                **sites_preview(progress.outcomes[key]),
                **({"llm_inflight_cap": cap.slots} if (cap := _cap(llm, run.provider)) else {}),
            },
        )

    for key in progress.nothing_pending():  # every site skipped: complete already
        if event := finish(key):
            yield event
    answers = answering.iter_answers(
        llm, postgres.database_url, asks(), run, concurrency=config.concurrency, prices=llm.price_table
    )
    for outcome in answers:
        if outcome.status == "failed":
            context.log.warning(f"app2 site {outcome.site_id} {outcome.target_id}: {outcome.reason}")
        key = key_by_target[outcome.target_id]
        if progress.land(key, outcome) and (event := finish(key)):
            yield event
    outcomes = progress.all_outcomes()
    failed_keys.sort(key=keys.index)

    with postgres.connect() as conn:
        yield checks.app2_coverage_result(conn, wanted)  # a shard's run: its own sites
    if checks.grounding_selected(context, "app2_finance"):
        yield checks.grounding_result("app2_finance", outcomes, run.blocking_apps)
    yield _run_observation(context, budget_note, over_budget, budget_keys, cap_before, _cap(llm, run.provider))

    total = summarise(outcomes)
    context.log.info(
        f"app2 done in {time.perf_counter() - started:.1f} s: {len(keys) - len(failed_keys)}/{len(keys)} partitions "
        f"materialized; calls {total['calls']}, cache hits {total['cache_hits']}, "
        f"tokens {total['tokens_in']}+{total['tokens_out']}, cost {total['cost_cny']:.4f} CNY "
        f"({total['cost_cny_by_site']}); memoization saved {total['memo_tokens_avoided']} tokens, "
        f"{total['memo_cost_avoided_cny']:.4f} CNY; grounded answers {checks.grounding_summary(outcomes)}"
    )
    if failed_keys:
        failures = [o for o in outcomes if o.status == "failed"]
        raise dg.Failure(
            description=(
                f"{len(failures)} answer(s) failed in {len(failed_keys)} of {len(keys)} partition(s); the other "
                f"{len(keys) - len(failed_keys)} partition(s) were materialized and every validated answer is cached. "
                "Re-run a failed partition alone (its key is listed) or the whole range: "
                "cached answers are not asked again."
            ),
            metadata={
                FAILED_PARTITIONS_METADATA: dg.MetadataValue.md(
                    "\n".join(f"- `{k.partition_key}` ({k.target_id})" for k in failed_keys)
                ),
                "failed_answers": dg.MetadataValue.md(failure_table(failures)),
                **as_metadata(total),
            },
        )


# ------------------------------------------------------------------------ budget and the cap


def _cap(llm: LLMResource, provider: str) -> CapSnapshot | None:
    """The shared in-flight cap now (``core/llm/inflight.py``); none for the offline analyst."""
    return llm.service.guards.inflight.snapshot() if provider != "offline" else None


def _run_deadline(context: dg.AssetExecutionContext) -> datetime:
    """When the run is stopped at the latest: its start plus its max runtime (the job's
    ``dagster/max_runtime`` tag, else the instance's run monitoring); a run without one gets
    ``prewarm_budget.NO_DEADLINE_RESERVATION_S``."""
    instance = context.instance
    try:
        seconds = float(context.run.tags.get(MAX_RUNTIME_TAG) or 0)
    except ValueError:
        seconds = 0.0
    if seconds <= 0 and instance.run_monitoring_enabled:
        seconds = float(instance.run_monitoring_max_runtime_seconds)
    if seconds <= 0:
        seconds = prewarm_budget.NO_DEADLINE_RESERVATION_S
    record = instance.get_run_record_by_id(context.run.run_id)
    started = record.start_time if record is not None and record.start_time else time.time()
    return datetime.fromtimestamp(started + seconds, UTC)


def _plan_budget(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    llm: LLMResource,
    run: RunInfo,
    keys: list[App2Key],
    finances: dict[int, prompts.SiteFinance | None],
) -> tuple[str, set[tuple[int, App2Key]]]:
    """What the budget cannot pay for, as (site, partition) pairs, the rest reserved for the run
    until its deadline (``core/prewarm_budget.py``); a memoized answer costs nothing."""
    paid = [key for key in keys if run.route(key.app_name).provider != "offline"]  # the offline analyst's are free
    if not paid:
        return "budget: the offline analyst costs no tokens", set()
    service = llm.service
    sites = [site_id for site_id, finance in finances.items() if finance is not None]
    apps = {k.app_name for k in paid}
    limits, deadline = service.guards.settings.budget, _run_deadline(context)
    misses: list[tuple[int, App2Key]] = []
    with postgres.connect(autocommit=True) as conn:
        averages = prewarm_budget.average_tokens(conn, apps, service.settings.budget_reserve_tokens)
        bound = sum(averages[k.app_name] for k in paid) * len(sites)
        room = prewarm_budget.reserve_bound(conn, context.run.run_id, bound, limits=limits, expires_at=deadline)
        if room is not None:  # even if nothing were memoized: no need to look closer
            return (
                f"budget: at most {bound} tokens for {len(paid) * len(sites)} answer(s), reserved for this run; "
                f"{room.left} left, {room.others_reserved} reserved by other runs' plans counted as spent"
            ), set()
        for site_id in sites:
            finance = finances[site_id]
            assert finance is not None
            latest = cache.latest_valid_for_site(conn, site_id, apps)
            for key in paid:
                ask = Ask(
                    site_id=site_id,
                    app_name=key.app_name,
                    target_id=key.target_id,
                    prompt=prompts.build_app2_prompt(finance, key.time_dimension, key.area, refs=prompts.References()),
                    prompt_version=prompts.PROMPT_VERSIONS[key.app_name],
                )
                route = run.route(key.app_name)
                prepared = answering.prepare(ask, route.provider, route.model)
                if answering.memo_hit(prepared, latest.get((key.app_name, key.target_id)), run) is None:
                    misses.append((site_id, key))
        priority = PrewarmScheduleSettings().priority()
        chosen = prewarm_budget.plan_and_reserve(
            conn,
            context.run.run_id,
            misses,
            cost=lambda m: averages[m[1].app_name],
            rank=lambda m: prewarm_budget.value_rank(m[1].time_dimension, m[1].area, m[0], priority),
            limits=limits,
            expires_at=deadline,
        )
    return chosen.summary(), set(chosen.skipped)


def _release_reservation(context: dg.AssetExecutionContext, postgres: PostgresResource) -> None:
    """The step is over: what the run reserved (if anything) and did not spend is left to the others."""
    try:
        with postgres.connect(autocommit=True) as conn:
            prewarm_budget.release_reservation(conn, context.run.run_id)
    except psycopg.Error as error:  # never hide how the step ended; the reservation expires by itself
        context.log.warning(f"app2: the budget reservation was not released ({error}); it expires at the run deadline")


def _run_observation(
    context: dg.AssetExecutionContext,
    budget_note: str,
    over_budget: set[tuple[int, App2Key]],
    budget_keys: list[App2Key],
    before: CapSnapshot | None,
    after: CapSnapshot | None,
) -> dg.AssetObservation:
    """The run's figures beyond its partitions: what the budget skipped and the in-flight cap."""
    metadata: dict[str, Any] = {
        "budget": dg.MetadataValue.text(budget_note),
        "budget_skipped_answers": len(over_budget),
    }
    if over_budget:
        lines = [f"- `{k.partition_key}`: {sum(1 for _, key in over_budget if key == k)} site(s)" for k in budget_keys]
        metadata["budget_skipped_partitions"] = dg.MetadataValue.md("\n".join(lines))
        context.log.warning(
            f"app2 {budget_note}: {len(budget_keys)} partition(s) not materialized; they are answered by a later "
            "prewarm (already cached answers are not asked again)"
        )
    if before is not None and after is not None:
        cuts, throttles = after.cuts - before.cuts, after.throttles - before.throttles
        metadata.update(
            {
                "llm_inflight_cap_start": before.slots,
                "llm_inflight_cap_end": after.slots,
                "llm_inflight_cap_cuts": cuts,
                "llm_throttled_answers": throttles,
            }
        )
        context.log.info(
            f"app2 LLM in-flight cap (all processes): {before.slots} -> {after.slots}, "
            f"{cuts} cut(s) after {throttles} throttling answer(s) during the run"
        )
    return dg.AssetObservation(asset_key="app2_finance", metadata=metadata)
