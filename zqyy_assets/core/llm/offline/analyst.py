"""The offline analyst's entry point: the app's answer from its prompt, labelled as offline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zqyy_assets.core.apps import CHAT_APP
from zqyy_assets.core.llm.offline.chat import chat_reply
from zqyy_assets.core.llm.offline.finance import finance_insights
from zqyy_assets.core.llm.offline.member import consolidate, customer, member_clues
from zqyy_assets.core.llm.offline.notes import note_analysis
from zqyy_assets.core.llm.offline.reading import Prompt, load_prompt
from zqyy_assets.core.llm.offline.relationship import relationship, tactics

OFFLINE_MODEL = "offline-analyst-1"
PROVIDER_TAG = {"_provider": "offline"}  # how an answer says the offline analyst gave it

_ANALYSTS: dict[str, Callable[[Prompt], dict[str, Any]]] = {
    "app2_finance": finance_insights,
    "app2a_finance_area": finance_insights,
    "app3_clue": lambda d: {"clues": member_clues(d)},
    "app4_analysis": relationship,
    "app5_tactics": tactics,
    "app6_note": note_analysis,
    "app7_customer": customer,
    "app8_consolidation": consolidate,
    "app1_chat": lambda d: {"text": chat_reply(d)},
}


def analyse(app_name: str, prompt: str | dict[str, Any] | list[Any]) -> dict[str, Any]:
    """The app's answer computed from the prompt's figures, labelled ``_provider: offline``."""
    if app_name == CHAT_APP and isinstance(prompt, str):  # the chat's text, read as it was written
        return {"text": chat_reply(prompt), **PROVIDER_TAG}
    try:
        analyst = _ANALYSTS[app_name]
    except KeyError:
        raise ValueError(f"no offline analyst for app {app_name!r}") from None
    return {**analyst(load_prompt(prompt)), **PROVIDER_TAG}
