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

from typing import Any

import dagster as dg
import psycopg
from pydantic import ValidationError

from zqyy_assets.core.answer_schemas import validate_answer
from zqyy_assets.core.apps import APP2_AREA_APP, APP2_SITE_APP
from zqyy_assets.core.partition_keys import all_app2_keys
from zqyy_assets.defs.resources import PostgresResource

APP2_COVERAGE_CHECK = "app2_coverage"
APP2_CACHE_TYPES = (APP2_SITE_APP, APP2_AREA_APP)

# asset -> the cache types (app names) its answers are stored under
ASSET_CACHE_TYPES: dict[str, tuple[str, ...]] = {
    "app2_finance": APP2_CACHE_TYPES,
    "app3_clue": ("app3_clue",),
    "app4_analysis": ("app4_analysis",),
    "app5_tactics": ("app5_tactics",),
    "app6_note": ("app6_note",),
    "app7_customer": ("app7_customer",),
    "app8_consolidation": ("app8_consolidation",),
}


# --------------------------------------------------------------------------------- coverage


def app2_coverage(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Per active site: has it finance figures, how many of the 72 answers exist, which are missing."""
    expected = {(k.app_name, k.target_id) for k in all_app2_keys()}
    sites = conn.execute(
        """SELECT s.site_id,
                  EXISTS (SELECT 1 FROM dws.finance_area_daily f WHERE f.site_id = s.site_id) AS has_data
           FROM ods.sites s WHERE s.is_active ORDER BY s.site_id"""
    ).fetchall()
    present = conn.execute(
        """SELECT DISTINCT site_id, cache_type, target_id FROM biz.ai_cache
           WHERE status = 'valid' AND cache_type = ANY(%s)""",
        (list(APP2_CACHE_TYPES),),
    ).fetchall()
    by_site: dict[int, set[tuple[str, str]]] = {}
    for row in present:
        by_site.setdefault(row["site_id"], set()).add((row["cache_type"], row["target_id"]))
    report = []
    for site in sites:
        have = by_site.get(site["site_id"], set()) & expected
        missing = sorted(target for _, target in expected - have)
        report.append(
            {
                "site_id": site["site_id"],
                "has_data": site["has_data"],
                "done": len(have),
                "total": len(expected),
                "missing": missing,
            }
        )
    return report


def app2_coverage_result(conn: psycopg.Connection) -> dg.AssetCheckResult:
    report = app2_coverage(conn)
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


def invalid_cached_answers(conn: psycopg.Connection, cache_types: tuple[str, ...]) -> tuple[int, list[dict]]:
    """(rows checked, invalid rows) over every valid row of these apps, history included."""
    checked = 0
    invalid: list[dict] = []
    with conn.cursor(name="ai_cache_validity") as cur:  # server-side: the history may be long
        cur.itersize = 2000
        cur.execute(
            """SELECT id, site_id, cache_type, target_id, result_json FROM biz.ai_cache
               WHERE status = 'valid' AND cache_type = ANY(%s) ORDER BY id""",
            (list(cache_types),),
        )
        for row in cur:
            checked += 1
            try:
                validate_answer(row["cache_type"], row["result_json"])
            except ValidationError as exc:
                first = exc.errors()[0]
                invalid.append(
                    {
                        "id": row["id"],
                        "site_id": row["site_id"],
                        "app": row["cache_type"],
                        "target_id": row["target_id"],
                        "error": f"{'.'.join(str(p) for p in first.get('loc', ())) or 'answer'}: {first.get('msg')}",
                    }
                )
    return checked, invalid


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
