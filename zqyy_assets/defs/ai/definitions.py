"""The AI domain's Dagster objects, for ``zqyy_assets/definitions.py`` to merge."""

from __future__ import annotations

import dagster as dg

from zqyy_assets.defs.ai.assets import ai_assets
from zqyy_assets.defs.ai.checks import ai_checks
from zqyy_assets.defs.ai.jobs import ai_jobs


def build_ai_defs() -> dg.Definitions:
    """The AI apps' assets, their checks and one job per chain (resources are bound at the top)."""
    return dg.Definitions(assets=ai_assets, asset_checks=ai_checks, jobs=ai_jobs)
