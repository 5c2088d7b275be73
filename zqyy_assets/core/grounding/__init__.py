"""Grounded numbers: every figure an answer's text cites must come from its prompt.

The costliest mistake an insight can make is a wrong figure. ``check_answer`` reads every text
of an answer (titles, contents, summaries, clues, suggestions...), finds each number it cites
(``numbers.py``: amounts, ``万``/``亿``, percentages, percentage points, multiples, counts) and
verifies it against the figures of the prompt the answer was given (``figures.py``): equal
within the rounding shown, or derived from two related figures (difference, ratio, share,
change, percentage-point difference). The verdict lists each ungrounded number with its
sentence and where it was found.

The verdict is computed when an answer is stored (``core/answering.py``), the one place that
has both the prompt and the answer, and kept on the cache row (``biz.ai_cache.grounding``,
migration 0018). For the apps whose check *blocks* (``GroundingSettings``, app2 by default) an
ungrounded answer is stored with status ``ungrounded``: kept in the history, never served as
the latest, so the previous good answer stays (every reader takes the newest ``valid`` row).
The asset checks (``defs/ai/checks.py``) report the verdicts of a run's answers.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, TypedDict

from zqyy_assets.core.apps import APP2_AREA_APP, APP2_SITE_APP
from zqyy_assets.core.cache import CachedAnswer
from zqyy_assets.core.grounding.figures import PromptFigures
from zqyy_assets.core.grounding.numbers import cited_numbers, sentence_around
from zqyy_assets.core.vocabulary import UNGROUNDED, VALID, CacheStatus

VERDICT_VERSION = 1
MAX_LISTED = 20  # ungrounded numbers kept per answer (the count is always exact)

# Every app whose answer is JSON cites figures from its prompt (the chat answers free text).
GROUNDED_APPS: tuple[str, ...] = (
    APP2_SITE_APP,
    APP2_AREA_APP,
    "app3_clue",
    "app4_analysis",
    "app5_tactics",
    "app6_note",
    "app7_customer",
    "app8_consolidation",
)
# Where an ungrounded answer is not served unless configured otherwise: the finance insights.
DEFAULT_BLOCKING_APPS: tuple[str, ...] = (APP2_SITE_APP, APP2_AREA_APP)

# Answer fields that hold codes or the model's own judgement, not cited figures; keys starting
# with "_" are the code's labels (``_references``, ``_provider``), not the model's text.
_NOT_TEXT = frozenset({"level", "metric", "relationship_level", "value_level", "churn_risk", "emoji"})


@dataclass(frozen=True)
class Ungrounded:
    number: str  # as written, e.g. "¥987,654.32"
    sentence: str
    field: str  # where in the answer, e.g. "insights.1.content"

    def as_json(self) -> dict[str, str]:
        return {"number": self.number, "sentence": self.sentence, "field": self.field}


@dataclass(frozen=True)
class Verdict:
    """What ``check_answer`` found: how many numbers were cited and which are not grounded."""

    numbers: int
    ungrounded: tuple[Ungrounded, ...] = field(default=())
    ungrounded_count: int = 0

    @property
    def grounded(self) -> bool:
        return self.ungrounded_count == 0

    def as_json(self) -> dict[str, Any]:
        """The cache row's ``grounding`` column."""
        return {
            "version": VERDICT_VERSION,
            "grounded": self.grounded,
            "numbers": self.numbers,
            "ungrounded_count": self.ungrounded_count,
            "ungrounded": [u.as_json() for u in self.ungrounded],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        listed = tuple(Ungrounded(u["number"], u["sentence"], u["field"]) for u in data.get("ungrounded", ()))
        return cls(int(data.get("numbers", 0)), listed, int(data.get("ungrounded_count", len(listed))))


def answer_texts(answer: Any, path: str = "") -> list[tuple[str, str]]:
    """(field path, text) of every string in the answer a reader sees as text."""
    if isinstance(answer, str):
        return [(path or "answer", answer)]
    if isinstance(answer, dict):
        return [
            item
            for key, value in answer.items()
            if key not in _NOT_TEXT and not str(key).startswith("_")
            for item in answer_texts(value, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(answer, list):
        return [item for i, value in enumerate(answer) for item in answer_texts(value, f"{path}.{i}")]
    return []


def ground(prompt: Any, answer: dict[str, Any]) -> Verdict:
    """Check every number the answer's text cites against the prompt's figures."""
    figures = PromptFigures(prompt, answer)
    numbers = 0
    missing: list[Ungrounded] = []
    for where, text in answer_texts(answer):
        for number in cited_numbers(text):
            numbers += 1
            if not figures.grounds(number):
                missing.append(Ungrounded(number.text, sentence_around(text, number.start, number.end), where))
    return Verdict(numbers, tuple(missing[:MAX_LISTED]), len(missing))


def check_answer(app_name: str, prompt: Any, answer: dict[str, Any]) -> Verdict | None:
    """The verdict for an app that cites figures; None for the others (the chat)."""
    if app_name not in GROUNDED_APPS:
        return None
    return ground(prompt, answer)


def stored_fields(app_name: str, prompt: Any, answer: dict[str, Any], blocking_apps: Collection[str]) -> StoredFields:
    """The cache row's ``grounding`` and ``status`` for an answer about to be stored: ``ungrounded``
    when a number is not grounded and the app's check blocks, else ``valid``."""
    verdict = check_answer(app_name, prompt, answer)
    blocked = verdict is not None and not verdict.grounded and app_name in blocking_apps
    return {"grounding": verdict.as_json() if verdict else None, "status": UNGROUNDED if blocked else VALID}


class StoredFields(TypedDict):
    grounding: dict[str, Any] | None
    status: CacheStatus


def ungrounded_line(row: CachedAnswer) -> str | None:
    """One line for an operator when a stored answer cites numbers its prompt does not hold."""
    if row.grounding is None or row.grounding.get("grounded", True):
        return None
    verdict = Verdict.from_json(row.grounding)
    listed = "; ".join(f"{u.number} ({u.field}: {u.sentence})" for u in verdict.ungrounded[:5])
    served = "stored as ungrounded, not served" if row.status == UNGROUNDED else "served all the same (not blocking)"
    return f"ungrounded numbers ({verdict.ungrounded_count} of {verdict.numbers}), {served}: {listed}"


def grounding_rate(verdicts: list[Verdict | None]) -> float | None:
    """The share of checked answers with every number grounded; None when none was checked."""
    checked = [v for v in verdicts if v is not None]
    return round(sum(v.grounded for v in checked) / len(checked), 4) if checked else None
