"""The AI assets: each partition's answers, validated and cached in biz.ai_cache.

``app2_finance`` (``app2.py``) answers the 72 finance partitions for every active site; the
member and assistant x member apps (``targets.py``) answer one target per partition. Run config
and run tags: ``config.py``.
"""

from zqyy_assets.defs.ai.app2 import app2_finance
from zqyy_assets.defs.ai.config import DEFAULT_CONCURRENCY
from zqyy_assets.defs.ai.targets import (
    app3_clue,
    app4_analysis,
    app5_tactics,
    app6_note,
    app7_customer,
    app8_consolidation,
)

ai_assets = [app2_finance, app3_clue, app6_note, app8_consolidation, app7_customer, app4_analysis, app5_tactics]

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
]
