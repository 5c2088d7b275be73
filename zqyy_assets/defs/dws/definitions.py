"""The DWS domain's Dagster objects, for ``zqyy_assets/definitions.py`` to merge."""

from __future__ import annotations

import dagster as dg

from zqyy_assets.defs.dws.assets import dws_assets
from zqyy_assets.defs.dws.checks import dws_checks
from zqyy_assets.defs.dws.partitions import build_business_date_partitions


def build_dws_defs(*, venue_timezone: str) -> dg.Definitions:
    """The DWS assets with their business-date partitions in ``venue_timezone``, and their checks.

    The assets are declared with the default venue's partitions (tools and tests materialize
    them as they are); here the daily ones get the configured venue's zone.
    """
    partitions = build_business_date_partitions(venue_timezone)

    def in_venue_zone(spec: dg.AssetSpec) -> dg.AssetSpec:
        if isinstance(spec.partitions_def, dg.DailyPartitionsDefinition):
            return spec.replace_attributes(partitions_def=partitions)
        return spec

    return dg.Definitions(assets=dg.map_asset_specs(in_venue_zone, dws_assets), asset_checks=dws_checks)
