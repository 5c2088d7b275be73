"""The member and assistant x member apps, one partition per target, one step per chain.

- ``member_apps`` [members: ``{site_id}-{member_id}``]: ``app3_clue``, ``app6_note``,
  ``app8_consolidation`` (after app3, app6; replaces the member's AI retention clues),
  ``app7_customer`` (after app8, app3).
- ``assistant_member_apps`` [assistant_members: ``{site_id}-{assistant_id}_{member_id}``]:
  ``app4_analysis``, ``app5_tactics`` (after app4).

A failed app does not stop the apps after it (the old dispatcher's rule): when App3 fails,
App8 still consolidates with the member's last good App3 clues and App7 still runs; an app
is skipped only when its own required input is missing (App8 with neither App3 nor App6
clues, App5 with no App4 analysis), and its materialization says why. The step then fails,
naming the failed app and keys, so the run ends failed with every other answer cached.

Why one subsettable multi-asset per chain rather than one asset (one step) per app: Dagster
never runs a step downstream of a failed step (``ActiveExecution`` abandons it; there is no
trigger rule, dagster-io/dagster#15761), and an upstream step that succeeds without its
output makes the downstream step skipped, so with one step per app the run could either fail
at App3 and skip App8/App7 or succeed and hide App3's failure. In one step the chain decides
what can still run, yields a materialization per app and partition as each one lands, and
raises one ``dg.Failure`` at the end: the step and the run are failed in the UI, the failure
(and the inbox status roll-up, which reads step failures) names ``app3_clue``, and App3's
unmaterialized partitions show as failed. ``can_subset`` keeps every app selectable alone
(``run/{app_type}``, the note chain's app6 + app8), and the specs keep the lineage.
"""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations at
# definition time and cannot resolve them from strings.
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from zqyy_assets.core import answering, prompts, retention
from zqyy_assets.core.answer_runs import active_sites, describe_target_failures
from zqyy_assets.core.answering import Ask, Outcome, RunInfo
from zqyy_assets.core.llm.errors import LLMError
from zqyy_assets.core.partition_keys import MemberKey, parse_assistant_member_key, parse_member_key
from zqyy_assets.core.tags import FAILED_PARTITIONS_METADATA
from zqyy_assets.core.vocabulary import VALID
from zqyy_assets.defs.ai import checks
from zqyy_assets.defs.ai.config import MEMBER_RETRY_POLICY, ConcurrentRunConfig, run_info
from zqyy_assets.defs.ai.metadata import TargetKey, key_extras, target_metadata
from zqyy_assets.defs.ai.partitions import assistant_members_partitions, members_partitions
from zqyy_assets.defs.ai.resources import LLMResource
from zqyy_assets.defs.dws.assets import dws_assistant_member, dws_member_profile
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource

# After a target's answer is cached (or reused): extra work and its metadata (App8 writes clues).
AfterAnswer = Callable[[dg.AssetExecutionContext, PostgresResource, TargetKey, Outcome, RunInfo], dict[str, Any]]
Results = list[tuple[TargetKey, Outcome]]


@dataclass(frozen=True)
class TargetApp:
    name: str
    deps: list[Any]
    description: str
    after_answer: AfterAnswer | None = None
    inputs: tuple[str, ...] = field(default=())  # apps of the same chain whose answers the prompt reads


def _answer_targets(
    context: dg.AssetExecutionContext,
    *,
    app_name: str,
    keys: list[TargetKey],
    config: ConcurrentRunConfig,
    llm: LLMResource,
    postgres: PostgresResource,
    venue_calendar: VenueCalendarResource,
) -> tuple[Results, RunInfo]:
    """Every key's outcome, in key order: skipped (nothing to ask), a memo hit, answered or failed.

    Prompts are built on this thread while earlier calls are already in flight (``iter_answers``
    with ``config.concurrency``); each answer is cached the moment it validates, with the
    ``_references`` its builder noted, so a failed target takes nothing from the others."""
    build = prompts.target_builder(app_name, context.run.tags)  # App6 may be given its note
    run = run_info(context, config, llm)
    by_target = {(k.site_id, k.target_id): k for k in keys}
    outcomes: dict[str, Outcome] = {}

    with postgres.connect(autocommit=True) as conn:
        active = {s["site_id"] for s in active_sites(conn)}

        def asks() -> Iterator[Ask]:
            for key in keys:
                refs = prompts.References()
                try:
                    if key.site_id not in active:
                        raise prompts.NothingToAsk(f"site {key.site_id} is not an active site")
                    prompt = build(conn, key, tz=venue_calendar.timezone, refs=refs)
                except prompts.NothingToAsk as why:
                    outcomes[key.partition_key] = Outcome(
                        key.site_id, app_name, key.target_id, "skipped", reason=str(why)
                    )
                    continue
                yield Ask(
                    key.site_id,
                    app_name,
                    key.target_id,
                    prompt,
                    prompts.PROMPT_VERSIONS[app_name],
                    references=refs.as_json(),
                )

        answers = answering.iter_answers(
            llm, postgres.database_url, asks(), run, concurrency=config.concurrency, prices=llm.price_table
        )
        for outcome in answers:
            outcomes[by_target[(outcome.site_id, outcome.target_id)].partition_key] = outcome

    for key in keys:
        o = outcomes[key.partition_key]
        detail = (
            o.reason
            if o.status in ("skipped", "failed")
            else f"calls {o.calls}, tokens {o.tokens_in}+{o.tokens_out}, cost {o.cost_cny:.4f} CNY"
            + (f", saved {o.tokens_avoided} tokens / {o.cost_avoided_cny:.4f} CNY" if o.status == "hit" else "")
        )
        log = context.log.warning if o.status == "failed" else context.log.info
        log(f"{app_name} {key.partition_key}: {o.status} ({detail})")
    return [(key, outcomes[key.partition_key]) for key in keys], run


@dataclass(frozen=True)
class AppFailure:
    app_name: str
    results: Results
    failed: Results


def chain_failure(failures: list[AppFailure]) -> dg.Failure:
    """The step's failure once every app that could run has run and every answer is cached.

    Names each failed app with its failed keys (``FAILED_PARTITIONS_METADATA``: the keys any app
    failed for, which the inbox status sensor uses to split a range run). A step retry asks only
    the failed targets again (the others are memo hits, unless forced); when every failure is
    permanent (a refused key, content inspection) no retry is allowed."""
    failed = [(k, o) for f in failures for k, o in f.failed]
    permanent = [o for _, o in failed if isinstance(o.error, dg.Failure) and not o.error.allow_retries]
    codes = {code for _, o in failed if (code := _error_code(o.error))}
    keys = list(dict.fromkeys(k.partition_key for k, _ in failed))
    return dg.Failure(
        description=" | ".join(
            describe_target_failures(f.app_name, len(f.results), [(k.partition_key, o) for k, o in f.failed])
            for f in failures
        ),
        metadata={
            FAILED_PARTITIONS_METADATA: dg.MetadataValue.text(",".join(keys)),
            "app_name": dg.MetadataValue.text(",".join(f.app_name for f in failures)),
            "answers_cached": dg.MetadataValue.int(sum(o.answer is not None for f in failures for _, o in f.results)),
            "error_code": dg.MetadataValue.text(",".join(sorted(codes))),
        },
        allow_retries=len(permanent) < len(failed),
    )


def _error_code(error: BaseException | None) -> str | None:
    """The provider's error code: on the LLM error, or on the Failure a permanent one became."""
    if isinstance(error, LLMError):
        return error.code
    if isinstance(error, dg.Failure) and "error_code" in error.metadata:
        return str(error.metadata["error_code"].value)
    return None


def _upstream_note(app: TargetApp, key: TargetKey, outcome: Outcome, failed_in_run: dict[str, set[str]]) -> str:
    """The chain's apps this target's prompt reads that failed for it in this run, e.g. ``app3_clue``."""
    upstream = [name for name in app.inputs if key.partition_key in failed_in_run.get(name, set())]
    if upstream and outcome.status == "skipped":
        outcome.reason = f"{outcome.reason} ({', '.join(upstream)} failed in this run)"
    return ",".join(upstream)


def _chain_step(
    name: str,
    apps: tuple[TargetApp, ...],
    *,
    partitions_def: dg.PartitionsDefinition,
    parse_key: Callable[[str], TargetKey],
    description: str,
) -> dg.AssetsDefinition:
    """One chain's apps (in chain order) as one subsettable step; see the module docstring."""

    @dg.multi_asset(
        name=name,
        specs=[
            dg.AssetSpec(
                app.name,
                deps=app.deps,
                description=app.description,
                group_name="ai",
                kinds={"python", "postgres"},
                partitions_def=partitions_def,
                skippable=True,  # a failed app yields no materialization for its failed partitions
            )
            for app in apps
        ],
        check_specs=[checks.grounding_check_spec(app.name) for app in apps],
        can_subset=True,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=MEMBER_RETRY_POLICY,
        pool="llm",
        description=description,
    )
    def _step(
        context: dg.AssetExecutionContext,
        config: ConcurrentRunConfig,
        llm: LLMResource,
        postgres: PostgresResource,
        venue_calendar: VenueCalendarResource,
    ) -> Iterator[dg.AssetMaterialization | dg.AssetCheckResult]:
        keys = [parse_key(k) for k in context.partition_keys]
        selected = {k.to_user_string() for k in context.selected_asset_keys}
        failures: list[AppFailure] = []
        failed_in_run: dict[str, set[str]] = {}
        for app in (a for a in apps if a.name in selected):
            results, run = _answer_targets(
                context,
                app_name=app.name,
                keys=keys,
                config=config,
                llm=llm,
                postgres=postgres,
                venue_calendar=venue_calendar,
            )
            for key, outcome in results:  # each landed target materializes, whatever the others did
                upstream_failed = _upstream_note(app, key, outcome, failed_in_run)
                if outcome.status == "failed":
                    continue
                extra = key_extras(app.name, key, outcome)
                if upstream_failed:
                    extra["upstream_failed"] = dg.MetadataValue.text(upstream_failed)
                if app.after_answer is not None and outcome.answer is not None and outcome.answer.status == VALID:
                    extra.update(app.after_answer(context, postgres, key, outcome, run))
                yield dg.AssetMaterialization(
                    asset_key=app.name, partition=key.partition_key, metadata=target_metadata(key, outcome, extra)
                )
            if checks.grounding_selected(context, app.name):
                yield checks.grounding_result(app.name, [o for _, o in results], run.blocking_apps)
            failed = [(k, o) for k, o in results if o.status == "failed"]
            if failed:
                failures.append(AppFailure(app.name, results, failed))
                failed_in_run[app.name] = {k.partition_key for k, _ in failed}
                context.log.warning(f"{app.name} failed for {len(failed)} key(s); the chain carries on")
        if failures:
            raise chain_failure(failures)

    return _step


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


MEMBER_APPS = (
    TargetApp(
        "app3_clue",
        deps=[dws_member_profile.key, "ods_settlements", "ods_recharges", "ods_members"],
        description="Retention clues read from the member's consumption (profile, recent visits, recharges). "
        "Partition '{site_id}-{member_id}'; cache target id: member id.",
    ),
    TargetApp(
        "app6_note",
        deps=["ods_notes", dws_member_profile.key],
        description="Analysis of the newest note about the member: score, summary, clues. "
        "Partition '{site_id}-{member_id}'; cache target id: member id.",
    ),
    TargetApp(
        "app8_consolidation",
        deps=["app3_clue", "app6_note"],
        inputs=("app3_clue", "app6_note"),
        after_answer=_replace_member_clues,
        description="The last good App3 and App6 clues consolidated; replaces the member's AI retention clues of "
        "the run's source (ai_note for note_created, else ai_consumption) in one transaction, manual clues "
        "untouched. Partition '{site_id}-{member_id}'; cache target id: member id.",
    ),
    TargetApp(
        "app7_customer",
        deps=["app8_consolidation", "app3_clue", dws_member_profile.key],
        inputs=("app8_consolidation", "app3_clue"),
        description="Customer analysis: segment, value, churn risk, suggestions, grounded in the consolidated "
        "clues (App8's, else App3's). Partition '{site_id}-{member_id}'; cache target id: member id.",
    ),
)
ASSISTANT_MEMBER_APPS = (
    TargetApp(
        "app4_analysis",
        deps=[dws_assistant_member.key, dws_member_profile.key, "ods_assistant_services", "ods_tasks", "ods_notes"],
        description="How an assistant and a member relate: level, strengths, risks. "
        "Partition '{site_id}-{assistant_id}_{member_id}'; cache target id '{assistant_id}_{member_id}'.",
    ),
    TargetApp(
        "app5_tactics",
        deps=["app4_analysis"],
        inputs=("app4_analysis",),
        description="What the assistant could say to the member next, from App4's last good analysis and the open "
        "task. Partition '{site_id}-{assistant_id}_{member_id}'; cache target id '{assistant_id}_{member_id}'.",
    ),
)

member_apps = _chain_step(
    "member_apps",
    MEMBER_APPS,
    partitions_def=members_partitions,
    parse_key=parse_member_key,
    description="The member apps, run in chain order in one step: app3, app6 -> app8 -> app7. A failed app does "
    "not stop the others; the step fails at the end naming it.",
)
assistant_member_apps = _chain_step(
    "assistant_member_apps",
    ASSISTANT_MEMBER_APPS,
    partitions_def=assistant_members_partitions,
    parse_key=parse_assistant_member_key,
    description="The assistant x member apps in one step: app4 -> app5. A failed app4 does not stop app5 "
    "(it reads App4's last good analysis); the step fails at the end naming it.",
)
