"""One pydantic model per app's answer: an answer is cached only once it validates.

The models are tolerant where the model's wording varies (extra keys are kept, Chinese level
words are mapped to the codes, a comma-separated ``providers`` string becomes a list) and
strict where the readers depend on a field (App2 ``insights``, App6 ``score``, App8 ``clues``).
``SCHEMAS`` maps each app name to its model; ``validate_answer`` is the one entry point.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Level = Literal["info", "warning", "positive"]
Grade = Literal["high", "medium", "low"]
RelationshipLevel = Literal["strong", "moderate", "weak", "new"]

_LEVEL_WORDS = {
    "提示": "info",
    "信息": "info",
    "中性": "info",
    "警告": "warning",
    "预警": "warning",
    "风险": "warning",
    "negative": "warning",
    "积极": "positive",
    "利好": "positive",
    "正面": "positive",
}
_GRADE_WORDS = {"高": "high", "中": "medium", "中等": "medium", "低": "low"}
_RELATIONSHIP_WORDS = {
    "紧密": "strong",
    "强": "strong",
    "稳定": "moderate",
    "中": "moderate",
    "一般": "weak",
    "弱": "weak",
    "疏远": "weak",
    "新": "new",
    "新建": "new",
    "新客": "new",
}


def _normalise(value: Any, words: dict[str, str]) -> Any:
    if isinstance(value, str):
        text = value.strip()
        return words.get(text, text.lower())
    return value


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Item(BaseModel):
    model_config = ConfigDict(extra="allow")


# ------------------------------------------------------------------------------- App1 (chat)


class App1ChatAnswer(_Answer):
    """The chat's synchronous answer: free text (the stream yields the same text in deltas)."""

    text: str


# ---------------------------------------------------------------------------- App2 / App2a


class FinanceInsight(_Item):
    title: str = Field(min_length=1)
    content: str = Field(min_length=1)
    metric: str | None = None
    change_pct: float | None = None  # percent, e.g. -12.5 for a 12.5 % fall
    level: Level = "info"

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return "info" if value is None else _normalise(value, _LEVEL_WORDS)


class App2FinanceAnswer(_Answer):
    """Whole-site finance insights (area ``all``)."""

    insights: list[FinanceInsight] = Field(min_length=1)


class App2aFinanceAreaAnswer(App2FinanceAnswer):
    """Finance insights for one area (the other eight ``area`` values)."""


# ----------------------------------------------------------------------------- clues (3, 6, 8)


class Clue(_Item):
    category: str = Field(min_length=1)  # e.g. 客户基础 / 消费习惯 / 玩法偏好 / 促销偏好 / 社交关系 / 重要反馈
    emoji: str = ""
    summary: str = Field(min_length=1)
    detail: str = ""


class App3ClueAnswer(_Answer):
    """Retention clues read from the member's consumption."""

    clues: list[Clue]


class App6NoteAnswer(_Answer):
    """An assistant's note about a member: its value as information, a summary and clues."""

    score: int = Field(ge=0, le=100)
    summary: str
    clues: list[Clue] = Field(default_factory=list)

    @field_validator("score", mode="before")
    @classmethod
    def _score(cls, value: Any) -> Any:
        # Models sometimes answer 85.0 or "85".
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and value.strip().isdigit():
            return int(value.strip())
        return value


class ConsolidatedClue(Clue):
    providers: list[str] = Field(default_factory=list)  # sources: "app3", "app6", "manual"...

    @field_validator("providers", mode="before")
    @classmethod
    def _providers(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            return [part.strip() for part in value.replace("、", ",").replace("，", ",").split(",") if part.strip()]
        return value


class App8ConsolidationAnswer(_Answer):
    """App3 and App6 clues merged: what replaces the member's AI retention clues."""

    clues: list[ConsolidatedClue]


# ------------------------------------------------------------------- App4 / App5 (assistant x member)


class App4AnalysisAnswer(_Answer):
    """How an assistant and a member relate."""

    relationship_level: RelationshipLevel
    summary: str
    strengths: list[str] = Field(default_factory=list)
    risks: list[str] = Field(default_factory=list)

    @field_validator("relationship_level", mode="before")
    @classmethod
    def _relationship(cls, value: Any) -> Any:
        return _normalise(value, _RELATIONSHIP_WORDS)


class App5TacticsAnswer(_Answer):
    """What the assistant could say to the member next."""

    opening_line: str = Field(min_length=1)
    talking_points: list[str] = Field(min_length=1)
    avoid: list[str] = Field(default_factory=list)


# ------------------------------------------------------------------------------- App7 (customer)


class App7CustomerAnswer(_Answer):
    segment: str = Field(min_length=1)  # e.g. 高价值常客 / 潜力会员 / 流失预警 / 沉睡会员 / 新客
    summary: str
    value_level: Grade
    churn_risk: Grade
    suggestions: list[str] = Field(default_factory=list)

    @field_validator("value_level", "churn_risk", mode="before")
    @classmethod
    def _grade(cls, value: Any) -> Any:
        return _normalise(value, _GRADE_WORDS)


SCHEMAS: dict[str, type[BaseModel]] = {
    "app1_chat": App1ChatAnswer,
    "app2_finance": App2FinanceAnswer,
    "app2a_finance_area": App2aFinanceAreaAnswer,
    "app3_clue": App3ClueAnswer,
    "app4_analysis": App4AnalysisAnswer,
    "app5_tactics": App5TacticsAnswer,
    "app6_note": App6NoteAnswer,
    "app7_customer": App7CustomerAnswer,
    "app8_consolidation": App8ConsolidationAnswer,
}


def validate_answer(app_name: str, payload: dict) -> BaseModel:
    """Validate an app's answer; raises ``KeyError`` for an unknown app, ``ValidationError`` if invalid."""
    return SCHEMAS[app_name].model_validate(payload)
