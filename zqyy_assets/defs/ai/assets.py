"""The AI assets: each partition's answers, validated and cached in biz.ai_cache.

``app2_finance`` (``app2.py``) answers the 72 finance partitions for every active site; the
member and assistant x member apps (``targets.py``) answer one target per partition, each
chain's apps in one step (``member_apps``, ``assistant_member_apps``). The app names below are
their asset keys (select them for a job or a run). Run config and run tags: ``config.py``.
"""

import dagster as dg

from zqyy_assets.defs.ai.app2 import app2_finance
from zqyy_assets.defs.ai.config import DEFAULT_CONCURRENCY
from zqyy_assets.defs.ai.targets import assistant_member_apps, member_apps

app3_clue = dg.AssetKey("app3_clue")
app6_note = dg.AssetKey("app6_note")
app8_consolidation = dg.AssetKey("app8_consolidation")
app7_customer = dg.AssetKey("app7_customer")
app4_analysis = dg.AssetKey("app4_analysis")
app5_tactics = dg.AssetKey("app5_tactics")

ai_assets = [app2_finance, member_apps, assistant_member_apps]

__all__ = [
    "DEFAULT_CONCURRENCY",
    "ai_assets",
    "app2_finance",
    "app3_clue",
    "app4_analysis",
    "app5_tactics",
    "app6_note",
    "app7_customer",
    "app8_consolidation",
    "assistant_member_apps",
    "member_apps",
]
