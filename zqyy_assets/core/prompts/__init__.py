"""Prompt builders: the JSON of real figures each app receives, built from DWS/ODS.

A prompt is data, not prose: the app's system prompt (Chinese, versioned in
``zqyy_assets/prompts/``) tells the model what to do with it. Keys are English (Chinese keys
made the old App2 prompts long and slow), labels and free text are Chinese. The shapes follow
what ``zqyy_assets.core.llm.offline`` reads, so the offline analyst answers from the same JSON.

Builders are pure reads: the same data gives byte-identical JSON (ordered lists, no clock),
which is what makes an unchanged input a cache hit. Times are written in the venue's time zone,
which the caller passes as ``tz`` (``VenueSettings.venue_timezone``).

- :mod:`.finance` app2/app2a (one site, time dimension and area), on the windows of :mod:`.windows`
- :mod:`.member` app3/6/7/8 and :mod:`.assistant_member` app4/5, on :mod:`.member_figures`
- :mod:`.registry` which builder serves which app, and each builder's version
- :mod:`.references` what each answer was built from (``_references``), noted by the builders
"""

from zqyy_assets.core.prompts.assistant_member import build_app4_prompt, build_app5_prompt
from zqyy_assets.core.prompts.common import NothingToAsk
from zqyy_assets.core.prompts.finance import SiteFinance, build_app2_prompt, load_site_finance
from zqyy_assets.core.prompts.member import (
    GivenNote,
    build_app3_prompt,
    build_app6_prompt,
    build_app7_prompt,
    build_app8_prompt,
)
from zqyy_assets.core.prompts.references import REFERENCES_KEY, References
from zqyy_assets.core.prompts.registry import (
    ASSISTANT_MEMBER_BUILDERS,
    MEMBER_BUILDERS,
    PROMPT_VERSIONS,
    TARGET_BUILDERS,
    target_builder,
)
from zqyy_assets.core.prompts.windows import period_pair

__all__ = [
    "ASSISTANT_MEMBER_BUILDERS",
    "MEMBER_BUILDERS",
    "PROMPT_VERSIONS",
    "REFERENCES_KEY",
    "TARGET_BUILDERS",
    "GivenNote",
    "NothingToAsk",
    "References",
    "SiteFinance",
    "build_app2_prompt",
    "build_app3_prompt",
    "build_app4_prompt",
    "build_app5_prompt",
    "build_app6_prompt",
    "build_app7_prompt",
    "build_app8_prompt",
    "load_site_finance",
    "period_pair",
    "target_builder",
]
