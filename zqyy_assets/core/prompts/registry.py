"""Which builder serves which app, and each builder's version.

The version goes into the memoization hash and the cache row, so a change of shape re-asks
every target once: bump it whenever the builder's JSON changes shape or meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from zqyy_assets.core.apps import NOTE_APP
from zqyy_assets.core.prompts.assistant_member import build_app4_prompt, build_app5_prompt
from zqyy_assets.core.prompts.member import (
    GivenNote,
    build_app3_prompt,
    build_app6_prompt,
    build_app7_prompt,
    build_app8_prompt,
)
from zqyy_assets.core.tags import NOTE_TAG

PROMPT_VERSIONS: dict[str, str] = {
    "app2_finance": "app2-p1",
    "app2a_finance_area": "app2-p1",  # one builder serves both finance apps
    "app3_clue": "app3-p1",
    "app4_analysis": "app4-p1",
    "app5_tactics": "app5-p1",
    "app6_note": "app6-p1",
    "app7_customer": "app7-p1",
    "app8_consolidation": "app8-p1",
}

# builder(conn, key, *, tz) -> the prompt; key is a MemberKey or an AssistantMemberKey.
PromptBuilder = Callable[..., dict[str, Any]]

MEMBER_BUILDERS: dict[str, PromptBuilder] = {
    "app3_clue": build_app3_prompt,
    "app6_note": build_app6_prompt,
    "app7_customer": build_app7_prompt,
    "app8_consolidation": build_app8_prompt,
}
ASSISTANT_MEMBER_BUILDERS: dict[str, PromptBuilder] = {
    "app4_analysis": build_app4_prompt,
    "app5_tactics": build_app5_prompt,
}
TARGET_BUILDERS: dict[str, PromptBuilder] = {**MEMBER_BUILDERS, **ASSISTANT_MEMBER_BUILDERS}


def target_builder(app_name: str, run_tags: Mapping[str, str]) -> PromptBuilder:
    """The app's builder with what the run was given: App6 analyses the note of the run tag
    ``zqyy/note`` (set by ``run/app6_note``) instead of the member's newest note."""
    build = TARGET_BUILDERS[app_name]
    if app_name == NOTE_APP and NOTE_TAG in run_tags:
        return partial(build, note=GivenNote.from_tag(run_tags[NOTE_TAG]))
    return build
