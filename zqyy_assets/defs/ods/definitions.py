"""The ODS domain's Dagster objects, for ``zqyy_assets/definitions.py`` to merge."""

from __future__ import annotations

import dagster as dg

from zqyy_assets.defs.ods.assets import ods_assets


def build_ods_defs() -> dg.Definitions:
    """The ODS tables as external assets: loaded by the connector or the CSV import, shown for lineage."""
    return dg.Definitions(assets=ods_assets)
