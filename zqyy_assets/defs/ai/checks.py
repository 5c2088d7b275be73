"""Asset checks of the AI cache, with their evidence as metadata.

- ``<asset>_answers_valid`` (one per AI asset): every cached answer still validates against
  its app's pydantic model (answers validate before insert, so a failure here means the schema
  moved or a row was written behind the assets' back). Run on demand or on a schedule; the
  event-driven chain jobs leave them out to stay cheap.
- ``app2_coverage``: every active site with finance figures has a valid answer for all 72
  app2 partitions. Evaluated by ``app2_finance`` itself at the end of every run (a prewarm
  included), before the run reports any failure, so the UI shows what is missing.
- ``<asset>_grounded`` (app2 and every member app): every number the run's answers cite is
  grounded in their prompts (``core/grounding``). The verdict is computed when each answer is
  stored; the asset evaluates the check over the answers its run wrote or reused, at the end
  of the step, with each ungrounded number and its sentence as evidence and the grounding
  rate per app. An app whose check blocks (``ZQYY_GROUNDING_BLOCKING_APPS``, app2 by default)
  fails it as an error, and its ungrounded answers are not served (the previous good answer
  stays); for the others the check warns.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import dagster as dg

from zqyy_assets.core.answer_audit import ASSET_CACHE_TYPES, app2_coverage, invalid_cached_answers
from zqyy_assets.core.answering import Outcome
from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.grounding import Verdict, grounding_rate
from zqyy_assets.core.vocabulary import UNGROUNDED
from zqyy_assets.defs.resources import PostgresResource

APP2_COVERAGE_CHECK = "app2_coverage"

# --------------------------------------------------------------------------------- coverage


def app2_coverage_result(conn: DictConnection, site_ids: Collection[int] | None = None) -> dg.AssetCheckResult:
    """Coverage of the run's sites (a prewarm shard's), default every active site."""
    report = app2_coverage(conn, site_ids)
    measured = [r for r in report if r["has_data"]]
    incomplete = [r for r in measured if r["missing"]]
    table = ["| site | done | total | first missing |", "| --- | --- | --- | --- |"]
    table += [
        f"| {r['site_id']} | {r['done']} | {r['total']} | {', '.join(r['missing'][:5]) or '-'} |" for r in measured
    ]
    return dg.AssetCheckResult(
        asset_key="app2_finance",
        check_name=APP2_COVERAGE_CHECK,
        passed=not incomplete,
        metadata={
            "active_sites": len(report),
            "sites_complete": len(measured) - len(incomplete),
            "sites_incomplete": len(incomplete),
            "sites_without_finance_data": dg.MetadataValue.text(
                ", ".join(str(r["site_id"]) for r in report if not r["has_data"]) or "none"
            ),
            "answers_missing": sum(len(r["missing"]) for r in measured),
            "coverage": dg.MetadataValue.md("\n".join(table)),
        },
    )


# --------------------------------------------------------------------------------- grounding


def grounding_check_name(asset_name: str) -> str:
    return f"{asset_name}_grounded"


def grounding_check_spec(asset_name: str) -> dg.AssetCheckSpec:
    """The grounded-numbers check of an AI asset, evaluated by the asset's own step."""
    return dg.AssetCheckSpec(
        grounding_check_name(asset_name),
        asset=asset_name,
        description="Every number the run's answers cite (amounts, percentages, points, counts) equals a figure "
        "of their prompt within rounding, or a difference, ratio, share or change of two related ones. Fails "
        "as an error where ZQYY_GROUNDING_BLOCKING_APPS names the app (app2 by default: the flagged answer is "
        "kept in the history, not served), else warns.",
    )


def grounding_selected(context: dg.AssetExecutionContext, asset_name: str) -> bool:
    """Whether the run evaluates the asset's grounding check (a job may leave it out)."""
    return (
        dg.AssetCheckKey(dg.AssetKey(asset_name), grounding_check_name(asset_name)) in context.selected_asset_check_keys
    )


def _verdict(outcome: Outcome) -> Verdict | None:
    answer = outcome.answer
    return Verdict.from_json(answer.grounding) if answer is not None and answer.grounding is not None else None


def grounding_figures(outcomes: Iterable[Outcome]) -> dict[str, float]:
    """The grounding rate of each app's answers among these outcomes (those with a verdict)."""
    by_app: dict[str, list[Verdict | None]] = {}
    for outcome in outcomes:
        if outcome.answer is not None:
            by_app.setdefault(outcome.app_name, []).append(_verdict(outcome))
    return {
        f"grounding_rate_{app}": rate
        for app, verdicts in sorted(by_app.items())
        if (rate := grounding_rate(verdicts)) is not None
    }


def grounding_summary(outcomes: Iterable[Outcome]) -> str:
    """``app2_finance 100.0%, app2a_finance_area 98.4%`` (the grounding rate per app), or ``-``."""
    rates = grounding_figures(outcomes)
    return ", ".join(f"{name.removeprefix('grounding_rate_')} {rate:.1%}" for name, rate in rates.items()) or "-"


def grounding_result(
    asset_name: str, outcomes: Iterable[Outcome], blocking_apps: Collection[str]
) -> dg.AssetCheckResult:
    """The check over the answers a run wrote or reused: each ungrounded number with its sentence."""
    outcomes = [o for o in outcomes if o.answer is not None]
    checked = [(o, v) for o in outcomes if (v := _verdict(o)) is not None]
    flagged = [(o, v) for o, v in checked if not v.grounded]
    rows = ["| site | target | number | sentence | field | served |", "| --- | --- | --- | --- | --- | --- |"]
    for o, v in flagged[:20]:
        assert o.answer is not None
        served = "no (kept as ungrounded)" if o.answer.status == UNGROUNDED else "yes"
        for u in v.ungrounded[:5]:
            sentence = u.sentence.replace("|", "\\|")
            rows.append(f"| {o.site_id} | {o.target_id} | {u.number} | {sentence} | {u.field} | {served} |")
    blocking = any(app in blocking_apps for app in ASSET_CACHE_TYPES[asset_name])
    return dg.AssetCheckResult(
        asset_key=asset_name,
        check_name=grounding_check_name(asset_name),
        passed=not flagged,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        metadata={
            "answers_checked": len(checked),
            "answers_grounded": len(checked) - len(flagged),
            "answers_ungrounded": len(flagged),
            "answers_without_verdict": len(outcomes) - len(checked),
            "numbers_cited": sum(v.numbers for _, v in checked),
            "numbers_ungrounded": sum(v.ungrounded_count for _, v in flagged),
            **{name: dg.MetadataValue.float(rate) for name, rate in grounding_figures(outcomes).items()},
            "blocking": blocking,
            "ungrounded": dg.MetadataValue.md("\n".join(rows) if flagged else "none"),
        },
    )


# --------------------------------------------------------------------------------- validity


def _validity_check(asset_name: str) -> dg.AssetChecksDefinition:
    cache_types = ASSET_CACHE_TYPES[asset_name]

    @dg.asset_check(
        asset=asset_name,
        name=f"{asset_name}_answers_valid",
        blocking=False,
        description=f"Every cached answer of {', '.join(cache_types)} validates against its pydantic model.",
    )
    def _check(postgres: PostgresResource) -> dg.AssetCheckResult:
        with postgres.connect() as conn:
            checked, invalid = invalid_cached_answers(conn, cache_types)
        lines = [f"- row {i['id']} site {i['site_id']} {i['app']} {i['target_id']}: {i['error']}" for i in invalid[:10]]
        return dg.AssetCheckResult(
            passed=not invalid,
            metadata={
                "rows_checked": checked,
                "invalid_rows": len(invalid),
                "first_invalid": dg.MetadataValue.md("\n".join(lines) or "none"),
            },
        )

    return _check


ai_checks = [_validity_check(name) for name in ASSET_CACHE_TYPES]
