"""Cached AI answers and retention clues."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class CacheEntry(BaseModel):
    id: int
    site_id: int
    app_type: str = Field(description="The app that produced the answer (the cache_type).")
    target_id: str
    status: str = Field(
        description="valid | invalidated | ungrounded (cites a number its prompt does not hold and its app's "
        "grounding check blocks: kept in the history, never served as the latest)"
    )
    result: dict[str, Any]
    score: float | None = None
    prompt_version: str
    provider: str
    model: str | None = None
    triggered_by: str
    tokens_in: int
    tokens_out: int
    latency_ms: int | None = None
    dagster_run_id: str | None = None
    created_at: datetime
    grounding: dict[str, Any] | None = Field(
        None,
        description="The grounded-numbers verdict: grounded, numbers cited, ungrounded_count and each ungrounded "
        "number with its sentence and field; null for answers stored before the check or of the chat.",
    )


class CacheHistory(BaseModel):
    items: list[CacheEntry]
    total: int
    limit: int
    offset: int


class FinanceInsights(BaseModel):
    site_id: int
    time_dimension: str
    area: str
    app_type: str
    target_id: str
    insights: list[Any] = Field(description="The answer's `insights` list.")
    result: dict[str, Any] = Field(description="The whole cached answer.")
    cache_id: int
    generated_at: datetime


class RetentionClue(BaseModel):
    id: int
    category: str
    summary: str
    detail: str
    source: str = Field(description="manual | ai_consumption | ai_note")
    recorded_by_name: str
    recorded_by_assistant_id: int | None = None
    created_at: datetime


class MemberClues(BaseModel):
    site_id: int
    member_id: int
    items: list[RetentionClue]
    total: int
