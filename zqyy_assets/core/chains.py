"""Which business event runs which chain of AI apps, and the run that carries each chain.

One run per chain, not per app: a chain's apps share one partition key (a member, or an
assistant x member pair), so they run together in one run of that chain's job (the jobs are
defined with the AI assets in ``zqyy_assets/defs/ai/jobs.py``). A consumption served by an
assistant runs two chains: member and assistant x member partitions cannot share a run.
"""

from __future__ import annotations

from dataclasses import dataclass

from zqyy_assets.core.vocabulary import ASSISTANT_MEMBERS, MEMBERS


@dataclass(frozen=True)
class Chain:
    name: str
    job_name: str
    asset_names: tuple[str, ...]
    partitions: str | None  # dynamic partitions name; None: app2's static 72 in one run
    label: str  # as the old admin showed app_chain


CONSUMPTION_CHAIN = Chain(
    "consumption",
    "consumption_chain_job",
    ("app3_clue", "app8_consolidation", "app7_customer"),
    MEMBERS,
    "app3→app8→app7",
)
NOTE_CHAIN = Chain("note", "note_chain_job", ("app6_note", "app8_consolidation"), MEMBERS, "app6→app8")
# The same two apps for a consumption an assistant served, as its own job so the UI tells them apart.
CONSUMPTION_ASSISTANT_CHAIN = Chain(
    "consumption_assistant",
    "consumption_assistant_chain_job",
    ("app4_analysis", "app5_tactics"),
    ASSISTANT_MEMBERS,
    "app4→app5",
)
TASK_CHAIN = Chain("task", "task_chain_job", ("app4_analysis", "app5_tactics"), ASSISTANT_MEMBERS, "app4→app5")
APP2_PREWARM = Chain("app2_prewarm", "app2_prewarm_job", ("app2_finance",), None, "app2")

CHAINS: tuple[Chain, ...] = (CONSUMPTION_CHAIN, CONSUMPTION_ASSISTANT_CHAIN, NOTE_CHAIN, TASK_CHAIN, APP2_PREWARM)
# The apps answered per assistant x member pair (target `{assistant_id}_{member_id}`).
ASSISTANT_MEMBER_APPS: frozenset[str] = frozenset(
    app for chain in CHAINS if chain.partitions == ASSISTANT_MEMBERS for app in chain.asset_names
)
