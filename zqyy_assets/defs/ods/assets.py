"""ODS tables as external assets: written by the POS connector, the demo generator or a CSV
import (not by Dagster), declared so the DWS assets show their lineage in the UI."""

import dagster as dg

from zqyy_assets.core.ods_tables import ODS_TABLE_LABELS

ods_assets = [
    dg.AssetSpec(
        key=f"ods_{table}",
        group_name="ods",
        description=f"ods.{table} ({label}), ingested from the venue's POS feed.",
        kinds={"postgres"},
        metadata={"table": f"ods.{table}"},
    )
    for table, label in ODS_TABLE_LABELS.items()
]
