"""ODS tables as external assets: written by the POS connector, the demo generator or a CSV
import (not by Dagster), declared so the DWS assets show their lineage in the UI."""

import dagster as dg

ODS_TABLES = {
    "sites": "门店",
    "areas": "区域",
    "tables": "球台",
    "members": "会员",
    "assistants": "助教",
    "settlements": "结算单",
    "assistant_services": "助教服务",
    "recharges": "储值",
    "notes": "备注",
    "tasks": "任务",
}

ods_assets = [
    dg.AssetSpec(
        key=f"ods_{table}",
        group_name="ods",
        description=f"ods.{table} ({label}), ingested from the venue's POS feed.",
        kinds={"postgres"},
        metadata={"table": f"ods.{table}"},
    )
    for table, label in ODS_TABLES.items()
]
