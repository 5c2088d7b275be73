"""Audits of the AI cache, without Dagster: app2's coverage and answers that no longer validate.

``defs/ai/checks.py`` turns them into asset checks.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from pydantic import ValidationError

from zqyy_assets.core.answer_schemas import validate_answer
from zqyy_assets.core.apps import APP2_AREA_APP, APP2_SITE_APP
from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.partition_keys import all_app2_keys

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


def app2_coverage(conn: DictConnection, site_ids: Collection[int] | None = None) -> list[dict[str, Any]]:
    """Per active site (of ``site_ids``, default all): has it finance figures, how many of the 72
    answers exist, which are missing."""
    expected = {(k.app_name, k.target_id) for k in all_app2_keys()}
    only = None if site_ids is None else sorted(site_ids)
    sites = conn.execute(
        """SELECT s.site_id,
                  EXISTS (SELECT 1 FROM dws.finance_area_daily f WHERE f.site_id = s.site_id) AS has_data
           FROM ods.sites s WHERE s.is_active AND (%(only)s::bigint[] IS NULL OR s.site_id = ANY(%(only)s))
           ORDER BY s.site_id""",
        {"only": only},
    ).fetchall()
    present = conn.execute(
        """SELECT DISTINCT site_id, cache_type, target_id FROM biz.ai_cache
           WHERE status = 'valid' AND cache_type = ANY(%(types)s)
             AND (%(only)s::bigint[] IS NULL OR site_id = ANY(%(only)s))""",
        {"types": list(APP2_CACHE_TYPES), "only": only},
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


def invalid_cached_answers(conn: DictConnection, cache_types: tuple[str, ...]) -> tuple[int, list[dict]]:
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
