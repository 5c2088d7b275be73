"""Asset checks of the AI cache, with their evidence as metadata.

- ``<asset>_answers_valid`` (one per AI asset): every cached answer still validates against
  its app's pydantic model (answers validate before insert, so a failure here means the schema
  moved or a row was written behind the assets' back). Run on demand or on a schedule; the
  event-driven chain jobs leave them out to stay cheap.
- ``app2_coverage``: every active site with finance figures has a valid answer for all 72
  app2 partitions. Evaluated by ``app2_finance`` itself at the end of every run (a prewarm
  included), before the run reports any failure, so the UI shows what is missing.
"""

from __future__ import annotations

from collections.abc import Collection

import dagster as dg

from zqyy_assets.core.answer_audit import ASSET_CACHE_TYPES, app2_coverage, invalid_cached_answers
from zqyy_assets.core.db import DictConnection
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
