"""The member and assistant x member apps, one partition per target.

- member apps [members: ``{site_id}-{member_id}``]: ``app3_clue``, ``app6_note``,
  ``app8_consolidation`` (after app3, app6; replaces the member's AI retention clues),
  ``app7_customer`` (after app8, app3).
- assistant x member apps [assistant_members: ``{site_id}-{assistant_id}_{member_id}``]:
  ``app4_analysis``, ``app5_tactics`` (after app4).
"""

# No `from __future__ import annotations`: Dagster reads the config and resource annotations at
# definition time and cannot resolve them from strings.
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg

from zqyy_assets.core import answering, prompts, retention
from zqyy_assets.core.answer_runs import active_sites, describe_target_failures
from zqyy_assets.core.answering import Ask, Outcome, RunInfo
from zqyy_assets.core.llm.errors import LLMError
from zqyy_assets.core.partition_keys import MemberKey, parse_assistant_member_key, parse_member_key
from zqyy_assets.core.tags import FAILED_PARTITIONS_METADATA
from zqyy_assets.defs.ai.config import MEMBER_RETRY_POLICY, ConcurrentRunConfig, run_info
from zqyy_assets.defs.ai.metadata import TargetKey, key_extras, target_metadata
from zqyy_assets.defs.ai.partitions import assistant_members_partitions, members_partitions
from zqyy_assets.defs.ai.resources import LLMResource
from zqyy_assets.defs.dws.assets import dws_assistant_member, dws_member_profile
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource

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
    build = prompts.target_builder(app_name, context.run.tags)  # App6 may be given its note
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


def target_failure(
    app_name: str, results: list[tuple[TargetKey, Outcome]], failed: list[tuple[TargetKey, Outcome]]
) -> dg.Failure:
    """The step's failure once every other target is answered and cached.

    A step retry asks only the failed targets again (the others are memo hits, unless forced);
    when every failure is permanent (a refused key, content inspection) no retry is allowed."""
    permanent = [o for _, o in failed if isinstance(o.error, dg.Failure) and not o.error.allow_retries]
    codes = {code for _, o in failed if (code := _error_code(o.error))}
    return dg.Failure(
        description=describe_target_failures(app_name, len(results), [(k.partition_key, o) for k, o in failed]),
        metadata={
            FAILED_PARTITIONS_METADATA: dg.MetadataValue.text(",".join(k.partition_key for k, _ in failed)),
            "app_name": dg.MetadataValue.text(app_name),
            "answers_cached": dg.MetadataValue.int(sum(o.answer is not None for _, o in results)),
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
            extra = key_extras(app_name, key, outcome)
            if after_answer is not None and outcome.answer is not None:
                extra.update(after_answer(context, postgres, key, outcome, run))
            extras.append(extra)
        failed = [(k, o) for k, o in results if o.status == "failed"]
        if failed:
            raise target_failure(app_name, results, failed)
        return dg.MaterializeResult(metadata=target_metadata(results, extras))

    return _asset


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
