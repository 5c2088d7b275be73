"""The registry of the Bailian apps: their names, app-id settings and versioned system prompts.

The app name (``app2_finance``...) is the key used everywhere: ledger rows, breakers, rate
buckets, cache rows, prompts and schemas. Each app's Bailian ``app_id`` comes from its own
environment variable, ``DASHSCOPE_APP_ID_<NAME>`` (e.g. ``DASHSCOPE_APP_ID_APP2_FINANCE``).

The real Bailian app keeps its system prompt in the console; ``zqyy_assets/prompts/<name>.md``
is the versioned copy used by the offline provider, the fake servers and, as the system message,
the OpenAI-compatible provider (``llm/openai_client.py``); its version line
(``<!-- version: ... -->``) labels every answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

PROMPTS_DIR = Path(__file__).resolve().parents[1] / "prompts"
_VERSION_RE = re.compile(r"<!--\s*version:\s*([^\s>]+)\s*-->")


@dataclass(frozen=True)
class AppSpec:
    name: str
    title: str  # short Chinese label, for logs and the admin UI
    json_answer: bool  # False for the chat app, whose answer is free text

    @property
    def app_id_env(self) -> str:
        return f"DASHSCOPE_APP_ID_{self.name.upper()}"

    @property
    def prompt_path(self) -> Path:
        return PROMPTS_DIR / f"{self.name}.md"


APPS: dict[str, AppSpec] = {
    spec.name: spec
    for spec in (
        AppSpec("app1_chat", "对话助手", json_answer=False),
        AppSpec("app2_finance", "财务洞察(全店)", json_answer=True),
        AppSpec("app2a_finance_area", "财务洞察(区域)", json_answer=True),
        AppSpec("app3_clue", "消费线索", json_answer=True),
        AppSpec("app4_analysis", "助教-会员关系分析", json_answer=True),
        AppSpec("app5_tactics", "沟通话术参考", json_answer=True),
        AppSpec("app6_note", "备注分析", json_answer=True),
        AppSpec("app7_customer", "客户分析", json_answer=True),
        AppSpec("app8_consolidation", "维客线索整合", json_answer=True),
    )
}

APP_NAMES: tuple[str, ...] = tuple(APPS)

APP2_SITE_APP = "app2_finance"  # finance insights for area 'all'
APP2_AREA_APP = "app2a_finance_area"  # the other eight areas
CHAT_APP = "app1_chat"
NOTE_APP = "app6_note"  # analyses one note: the member's newest, or one given to run/app6_note

# The apps whose answers are cached (every app but the chat): the API's `app_type`.
AppType = Literal[
    "app2_finance",
    "app2a_finance_area",
    "app3_clue",
    "app4_analysis",
    "app5_tactics",
    "app6_note",
    "app7_customer",
    "app8_consolidation",
]
APP_TYPES: tuple[str, ...] = AppType.__args__  # type: ignore[attr-defined]
assert set(APP_TYPES) == set(APP_NAMES) - {CHAT_APP}, "AppType must list every cached app"


def get_app(name: str) -> AppSpec:
    try:
        return APPS[name]
    except KeyError:
        raise ValueError(f"unknown LLM app {name!r}; known: {', '.join(APP_NAMES)}") from None


@cache
def system_prompt(name: str) -> str:
    """The repo copy of the app's system prompt (Chinese), version line included."""
    return get_app(name).prompt_path.read_text(encoding="utf-8")


@cache
def prompt_version(name: str) -> str:
    """The version on the first line of the app's prompt file, e.g. ``2026-11-22.1``."""
    first_line = system_prompt(name).splitlines()[0] if system_prompt(name) else ""
    match = _VERSION_RE.search(first_line)
    if not match:
        raise ValueError(f"{get_app(name).prompt_path} must start with a '<!-- version: ... -->' line")
    return match.group(1)


def app_for_app_id(app_id: str, mapping: dict[str, str] | None = None) -> str | None:
    """The app name an ``app_id`` stands for: by an explicit mapping, else by containing the name.

    Used by the fake server, whose demo app ids are ``fake-<name>``. Longest name first, so an id
    naming ``app2a_finance_area`` is never taken for ``app2_finance``.
    """
    if mapping and app_id in mapping:
        return mapping[app_id]
    for name in sorted(APP_NAMES, key=len, reverse=True):
        if name in app_id:
            return name
    return None
