"""The AI assets: each partition's answers, validated and cached in biz.ai_cache.

- ``app2_finance`` [time_dimension x area, 72]: every partition answers for every active site.
  A range of partitions (all 72 in a prewarm) runs as one run: the prompts are built for all
  sites, then the calls go out concurrently (``concurrency``, default 8). Each answer is cached
  the moment it validates. A partition is materialized only when every site's answer for it is
  in the cache; when some failed, the step fails after materializing the others, naming what
  failed, so the UI shows exactly those partitions as failed and each can be re-run alone.
- member apps [members: ``{site_id}-{member_id}``]: ``app3_clue``, ``app6_note``,
  ``app8_consolidation`` (after app3, app6; replaces the member's AI retention clues),
  ``app7_customer`` (after app8, app3).
- assistant x member apps [assistant_members: ``{site_id}-{assistant_id}_{member_id}``]:
  ``app4_analysis``, ``app5_tactics`` (after app4).

Run controls: ``force`` (config) or the run tag ``zqyy/force=true`` bypasses memoization;
``trigger`` (config) or the run tag ``zqyy/trigger`` names
what triggered the run (cache ``triggered_by``; App8's clue source). App2 answers for every
active site unless ``site_ids`` (config) or the tag ``zqyy/site_ids`` (``1,2``) or
``zqyy/site_id`` narrows it.
"""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations at
# definition time and cannot resolve them from strings.
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import dagster as dg
from pydantic import Field

from zqyy_assets.core import answering, prompts, retention
from zqyy_assets.core.answering import Ask, Outcome, RunInfo
from zqyy_assets.core.llm.errors import LLMError
from zqyy_assets.core.partition_keys import (
    App2Key,
    AssistantMemberKey,
    MemberKey,
    parse_app2_key,
    parse_assistant_member_key,
    parse_member_key,
)
from zqyy_assets.core.tags import (
    DEFAULT_TRIGGER,
    FAILED_PARTITIONS_METADATA,
    FORCE_TAG,
    SITE_TAG,
    SITES_TAG,
    TRIGGER_TAG,
    is_true,
)
from zqyy_assets.defs.ai import checks
from zqyy_assets.defs.ai.partitions import (
    app2_partitions,
    assistant_members_partitions,
    members_partitions,
)
from zqyy_assets.defs.ai.resources import LLMResource
from zqyy_assets.defs.dws.assets import (
    dws_assistant_member,
    dws_finance_area_daily,
    dws_member_profile,
)
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource

DEFAULT_CONCURRENCY = 8

# Two quick tries inside the LLM layer, then one later step retry (see llm/service.py).
MEMBER_RETRY_POLICY = dg.RetryPolicy(
    max_retries=1, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


class AIRunConfig(dg.Config):
    force: bool = Field(False, description="Call the app even when the cached answer has the same input hash.")
    trigger: str | None = Field(
        None, description=f"What triggered the run; default: the {TRIGGER_TAG} tag, else 'manual'."
    )


class ConcurrentRunConfig(AIRunConfig):
    concurrency: int = Field(
        DEFAULT_CONCURRENCY, ge=1, le=64, description="LLM calls in flight at once when a run asks for several targets."
    )


class App2Config(ConcurrentRunConfig):
    as_of_date: str | None = Field(
        None, description="Business date the windows end at (YYYY-MM-DD); default each site's latest DWS date."
    )
    site_ids: list[int] | None = Field(
        None, description=f"Only these active sites; default the {SITES_TAG} / {SITE_TAG} tag, else all active sites."
    )


def run_info(context: dg.AssetExecutionContext, config: AIRunConfig, llm: LLMResource) -> RunInfo:
    tags = context.run.tags
    force = config.force or is_true(tags.get(FORCE_TAG))
    trigger = config.trigger or tags.get(TRIGGER_TAG) or DEFAULT_TRIGGER
    return RunInfo(provider=llm.service.provider, trigger=trigger, force=force, dagster_run_id=context.run.run_id)


def active_sites(conn: Any) -> list[dict]:
    return conn.execute("SELECT site_id, name FROM ods.sites WHERE is_active ORDER BY site_id").fetchall()


def requested_sites(context: dg.AssetExecutionContext, config: App2Config) -> set[int] | None:
    """The sites a run is narrowed to (config, else tags), or None for every active site."""
    if config.site_ids is not None:
        return set(config.site_ids)
    tags = context.run.tags
    raw = tags.get(SITES_TAG) or tags.get(SITE_TAG)
    if not raw:
        return None
    try:
        return {int(part) for part in raw.split(",") if part.strip()}
    except ValueError:
        raise dg.Failure(f"run tag {SITES_TAG}/{SITE_TAG} must be site ids separated by commas, got {raw!r}") from None


# ------------------------------------------------------------------------------------- app2


@dg.asset(
    group_name="ai",
    partitions_def=app2_partitions,
    # A range of partitions (all 72 in a prewarm) is one run with bounded concurrency inside.
    backfill_policy=dg.BackfillPolicy.single_run(),
    # Materializations are yielded per partition, only for partitions whose answers all landed.
    output_required=False,
    deps=[dws_finance_area_daily, "ods_sites", "ods_areas"],
    check_specs=[
        dg.AssetCheckSpec(
            checks.APP2_COVERAGE_CHECK,
            asset="app2_finance",
            description="Each active site with finance figures has a valid answer for all 72 partitions.",
        )
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
    outcomes_by_target: dict[str, list[Outcome]] = defaultdict(list)
    pending: Counter[str] = Counter()
    for key in keys:
        for site_id, finance in finances.items():
            if finance is None:
                outcomes_by_target[key.target_id].append(
                    Outcome(
                        site_id, key.app_name, key.target_id, "skipped", reason="no DWS finance figures for the site"
                    )
                )
            else:
                pending[key.target_id] += 1

    def asks() -> Iterator[Ask]:
        for key in keys:
            for site_id, finance in finances.items():
                if finance is not None:
                    yield Ask(
                        site_id=site_id,
                        app_name=key.app_name,
                        target_id=key.target_id,
                        prompt=prompts.build_app2_prompt(finance, key.time_dimension, key.area),
                        prompt_version=prompts.PROMPT_VERSIONS[key.app_name],
                    )

    context.log.info(
        f"app2: {len(keys)} partition(s) x {len(sites)} active site(s): {sum(pending.values())} answers to get, "
        f"{sum(f is None for f in finances.values())} site(s) without figures skipped; provider {run.provider}, "
        f"concurrency {config.concurrency}, force {run.force}"
    )

    key_by_target = {key.target_id: key for key in keys}
    failed_keys: list[App2Key] = []

    def finish(key: App2Key) -> dg.AssetMaterialization | None:
        group = outcomes_by_target[key.target_id]
        if any(o.status == "failed" for o in group):
            failed_keys.append(key)
            return None
        return dg.AssetMaterialization(
            asset_key=context.asset_key,
            partition=str(key.partition_key),
            metadata={
                **answering.summarise(group),
                "app": dg.MetadataValue.text(key.app_name),
                "target_id": dg.MetadataValue.text(key.target_id),
            },
        )

    for key in keys:  # partitions with nothing to ask (every site skipped) are complete already
        if not pending[key.target_id] and (event := finish(key)):
            yield event
    for outcome in answering.iter_answers(llm, postgres.database_url, asks(), run, concurrency=config.concurrency):
        if outcome.status == "failed":
            context.log.warning(f"app2 site {outcome.site_id} {outcome.target_id}: {outcome.reason}")
        outcomes_by_target[outcome.target_id].append(outcome)
        pending[outcome.target_id] -= 1
        if not pending[outcome.target_id] and (event := finish(key_by_target[outcome.target_id])):
            yield event
    outcomes = [o for group in outcomes_by_target.values() for o in group]
    failed_keys.sort(key=keys.index)

    with postgres.connect() as conn:
        yield checks.app2_coverage_result(conn)

    total = answering.summarise(outcomes)
    context.log.info(
        f"app2 done in {time.perf_counter() - started:.1f} s: {len(keys) - len(failed_keys)}/{len(keys)} partitions "
        f"materialized; calls {total['calls'].value}, cache hits {total['cache_hits'].value}, "
        f"tokens {total['tokens_in'].value}+{total['tokens_out'].value}"
    )
    if failed_keys:
        failures = [o for o in outcomes if o.status == "failed"]
        raise dg.Failure(
            description=(
                f"{len(failures)} answer(s) failed in {len(failed_keys)} of {len(keys)} partition(s); the other "
                f"{len(keys) - len(failed_keys)} partition(s) were materialized and every validated answer is cached. "
                "Re-run a failed partition alone (its key is listed) or the whole range: cached answers are not asked again."
            ),
            metadata={
                "failed_partitions": dg.MetadataValue.md(
                    "\n".join(f"- `{k.partition_key}` ({k.target_id})" for k in failed_keys)
                ),
                "failed_answers": dg.MetadataValue.md(_failure_table(failures)),
                **total,
            },
        )


def _failure_table(failures: list[Outcome], limit: int = 50) -> str:
    lines = ["| site | target | app | error |", "| --- | --- | --- | --- |"]
    for o in failures[:limit]:
        reason = (o.reason or "").replace("|", "/").replace("\n", " ")[:300]
        lines.append(f"| {o.site_id} | {o.target_id} | {o.app_name} | {reason} |")
    if len(failures) > limit:
        lines.append(f"| ... | {len(failures) - limit} more | | |")
    return "\n".join(lines)


# ------------------------------------------------------------------------ member-level apps


TargetKey = MemberKey | AssistantMemberKey
# After a target's answer is cached (or reused): extra work and its metadata (App8 writes clues).
AfterAnswer = Callable[[dg.AssetExecutionContext, PostgresResource, TargetKey, Outcome, RunInfo], dict[str, Any]]


def _answer_targets(
    context: dg.AssetExecutionContext,
    *,
    app_name: str,
    keys: list[TargetKey],
    config: ConcurrentRunConfig,
    llm: LLMResource,
    postgres: PostgresResource,
    venue_calendar: VenueCalendarResource,
) -> tuple[list[tuple[TargetKey, Outcome]], RunInfo]:
    """Every key's outcome, in key order: skipped (nothing to ask), a memo hit, answered or failed.

    Prompts are built on this thread while earlier calls are already in flight (``iter_answers``
    with ``config.concurrency``); each answer is cached the moment it validates, so a failed
    target takes nothing from the others."""
    build = prompts.TARGET_BUILDERS[app_name]
    run = run_info(context, config, llm)
    by_target = {(k.site_id, k.target_id): k for k in keys}
    outcomes: dict[str, Outcome] = {}

    with postgres.connect(autocommit=True) as conn:
        active = {s["site_id"] for s in active_sites(conn)}

        def asks() -> Iterator[Ask]:
            for key in keys:
                try:
                    if key.site_id not in active:
                        raise prompts.NothingToAsk(f"site {key.site_id} is not an active site")
                    prompt = build(conn, key, tz=venue_calendar.timezone)
                except prompts.NothingToAsk as why:
                    outcomes[key.partition_key] = Outcome(
                        key.site_id, app_name, key.target_id, "skipped", reason=str(why)
                    )
                    continue
                yield Ask(key.site_id, app_name, key.target_id, prompt, prompts.PROMPT_VERSIONS[app_name])

        for outcome in answering.iter_answers(llm, postgres.database_url, asks(), run, concurrency=config.concurrency):
            outcomes[by_target[(outcome.site_id, outcome.target_id)].partition_key] = outcome

    for key in keys:
        o = outcomes[key.partition_key]
        detail = (
            o.reason if o.status in ("skipped", "failed") else f"calls {o.calls}, tokens {o.tokens_in}+{o.tokens_out}"
        )
        log = context.log.warning if o.status == "failed" else context.log.info
        log(f"{app_name} {key.partition_key}: {o.status} ({detail})")
    return [(key, outcomes[key.partition_key]) for key in keys], run


def _failure(
    app_name: str, results: list[tuple[TargetKey, Outcome]], failed: list[tuple[TargetKey, Outcome]]
) -> dg.Failure:
    """The step's failure once every other target is answered and cached.

    A step retry asks only the failed targets again (the others are memo hits, unless forced);
    when every failure is permanent (a refused key, content inspection) no retry is allowed."""
    permanent = [o for _, o in failed if isinstance(o.error, dg.Failure) and not o.error.allow_retries]
    described = "; ".join(f"{k.partition_key}: {o.reason}" for k, o in failed[:10])
    more = f"; and {len(failed) - 10} more" if len(failed) > 10 else ""
    metadata: dict[str, Any] = {
        FAILED_PARTITIONS_METADATA: dg.MetadataValue.text(",".join(k.partition_key for k, _ in failed)),
        "app_name": dg.MetadataValue.text(app_name),
        "answers_cached": dg.MetadataValue.int(sum(o.answer is not None for _, o in results)),
    }
    codes = {code for _, o in failed if (code := _error_code(o.error))}
    metadata["error_code"] = dg.MetadataValue.text(",".join(sorted(codes)))
    return dg.Failure(
        description=f"{app_name}: {len(failed)} of {len(results)} target(s) failed: {described}{more}",
        metadata=metadata,
        allow_retries=len(permanent) < len(failed),
    )


def _error_code(error: BaseException | None) -> str | None:
    """The provider's error code: on the LLM error, or on the Failure a permanent one became."""
    if isinstance(error, LLMError):
        return error.code
    if isinstance(error, dg.Failure) and "error_code" in error.metadata:
        return str(error.metadata["error_code"].value)
    return None


def _target_metadata(results: list[tuple[TargetKey, Outcome]], extras: list[dict[str, Any]]) -> dict[str, Any]:
    """One partition: its own figures. A range: the figures summed, recorded on each partition
    (Dagster gives a single-run range one materialization per partition with shared metadata)."""
    outcomes = [o for _, o in results]
    metadata: dict[str, Any] = {**answering.summarise(outcomes)}
    if len(results) == 1:
        [(key, outcome)] = results
        metadata.update(
            site_id=dg.MetadataValue.int(key.site_id),
            target_id=dg.MetadataValue.text(key.target_id),
            status=dg.MetadataValue.text(outcome.status),
        )
        if outcome.reason:
            metadata["skip_reason"] = dg.MetadataValue.text(outcome.reason)
        if outcome.answer is not None:
            metadata["cache_row_id"] = dg.MetadataValue.int(outcome.answer.id)
        for extra in extras:
            metadata.update(extra)
        return metadata
    metadata.update(
        partitions=dg.MetadataValue.int(len(results)),
        targets_skipped=dg.MetadataValue.int(sum(o.status == "skipped" for o in outcomes)),
        first_partition=dg.MetadataValue.text(results[0][0].partition_key),
        last_partition=dg.MetadataValue.text(results[-1][0].partition_key),
    )
    for extra in extras:  # numeric extras add up over the range
        for name, value in extra.items():
            if isinstance(value, dg.IntMetadataValue):
                previous = metadata.get(name)
                metadata[name] = dg.MetadataValue.int((previous.value if previous else 0) + value.value)
    return metadata


def _target_app(
    app_name: str,
    *,
    partitions_def: dg.PartitionsDefinition,
    parse_key: Callable[[str], TargetKey],
    deps: list[Any],
    description: str,
    after_answer: AfterAnswer | None = None,
) -> dg.AssetsDefinition:
    """A member or assistant x member app. A run may cover a range of partitions (the inbox
    sensor batches a burst of new members into one run per chain): each key is answered
    concurrently inside the step, and the step fails, after caching every other answer, when
    any key failed."""

    @dg.asset(
        name=app_name,
        group_name="ai",
        partitions_def=partitions_def,
        deps=deps,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=MEMBER_RETRY_POLICY,
        pool="llm",
        kinds={"python", "postgres"},
        description=description,
    )
    def _asset(
        context: dg.AssetExecutionContext,
        config: ConcurrentRunConfig,
        llm: LLMResource,
        postgres: PostgresResource,
        venue_calendar: VenueCalendarResource,
    ) -> dg.MaterializeResult:
        keys = [parse_key(k) for k in context.partition_keys]
        results, run = _answer_targets(
            context,
            app_name=app_name,
            keys=keys,
            config=config,
            llm=llm,
            postgres=postgres,
            venue_calendar=venue_calendar,
        )
        extras = []
        for key, outcome in results:  # before failing: the answered keys' work is done either way
            extra = _key_extras(app_name, key, outcome)
            if after_answer is not None and outcome.answer is not None:
                extra.update(after_answer(context, postgres, key, outcome, run))
            extras.append(extra)
        failed = [(k, o) for k, o in results if o.status == "failed"]
        if failed:
            raise _failure(app_name, results, failed)
        return dg.MaterializeResult(metadata=_target_metadata(results, extras))

    return _asset


def _key_extras(app_name: str, key: TargetKey, outcome: Outcome) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if isinstance(key, AssistantMemberKey):
        extra.update(assistant_id=dg.MetadataValue.int(key.assistant_id), member_id=dg.MetadataValue.int(key.member_id))
    if app_name == "app6_note" and outcome.answer is not None:
        extra["score"] = dg.MetadataValue.float(float(outcome.answer.score or 0))
    return extra


def _replace_member_clues(
    context: dg.AssetExecutionContext, postgres: PostgresResource, key: TargetKey, outcome: Outcome, run: RunInfo
) -> dict[str, Any]:
    """App8: the answer's clues replace the member's AI clues of the run's source. Also on a
    cache hit: replacing with the same answer is idempotent, and the run's source may differ
    from the one that first wrote these clues."""
    assert outcome.answer is not None and isinstance(key, MemberKey)
    with postgres.connect() as conn:
        replaced = retention.replace_ai_clues(
            conn,
            site_id=key.site_id,
            member_id=key.member_id,
            source=retention.source_for_trigger(run.trigger),
            clues=outcome.answer.result_json.get("clues") or [],
            dagster_run_id=context.run.run_id,
        )
    return {
        "clue_source": dg.MetadataValue.text(replaced.source),
        "clues_deleted": dg.MetadataValue.int(replaced.deleted),
        "clues_written": dg.MetadataValue.int(replaced.inserted),
    }


def _member_app(app_name: str, **kwargs: Any) -> dg.AssetsDefinition:
    return _target_app(app_name, partitions_def=members_partitions, parse_key=parse_member_key, **kwargs)


def _assistant_member_app(app_name: str, **kwargs: Any) -> dg.AssetsDefinition:
    return _target_app(
        app_name, partitions_def=assistant_members_partitions, parse_key=parse_assistant_member_key, **kwargs
    )


app3_clue = _member_app(
    "app3_clue",
    deps=[dws_member_profile, "ods_settlements", "ods_recharges", "ods_members"],
    description="Retention clues read from the member's consumption (profile, recent visits, recharges). "
    "Partition '{site_id}-{member_id}'; cache target id: member id.",
)
app6_note = _member_app(
    "app6_note",
    deps=["ods_notes", dws_member_profile],
    description="Analysis of the newest note about the member: score, summary, clues. "
    "Partition '{site_id}-{member_id}'; cache target id: member id.",
)
app8_consolidation = _member_app(
    "app8_consolidation",
    deps=[app3_clue, app6_note],
    after_answer=_replace_member_clues,
    description="App3 and App6 clues consolidated; replaces the member's AI retention clues of the run's source "
    "(ai_note for note_created, else ai_consumption) in one transaction, manual clues untouched. "
    "Partition '{site_id}-{member_id}'; cache target id: member id.",
)
app7_customer = _member_app(
    "app7_customer",
    deps=[app8_consolidation, app3_clue, dws_member_profile],
    description="Customer analysis: segment, value, churn risk, suggestions, grounded in the consolidated clues. "
    "Partition '{site_id}-{member_id}'; cache target id: member id.",
)
app4_analysis = _assistant_member_app(
    "app4_analysis",
    deps=[dws_assistant_member, dws_member_profile, "ods_assistant_services", "ods_tasks", "ods_notes"],
    description="How an assistant and a member relate: level, strengths, risks. "
    "Partition '{site_id}-{assistant_id}_{member_id}'; cache target id '{assistant_id}_{member_id}'.",
)
app5_tactics = _assistant_member_app(
    "app5_tactics",
    deps=[app4_analysis],
    description="What the assistant could say to the member next, from App4's analysis and the open task. "
    "Partition '{site_id}-{assistant_id}_{member_id}'; cache target id '{assistant_id}_{member_id}'.",
)

ai_assets = [app2_finance, app3_clue, app6_note, app8_consolidation, app7_customer, app4_analysis, app5_tactics]
