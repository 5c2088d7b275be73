"""Materialization metadata of the AI assets, from the plain figures ``core.answering`` sums up."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dagster as dg

from zqyy_assets.core.answering import Outcome, summarise
from zqyy_assets.core.partition_keys import AssistantMemberKey, MemberKey

TargetKey = MemberKey | AssistantMemberKey


def as_metadata(values: dict[str, int | float | str]) -> dict[str, dg.MetadataValue]:
    """Numbers as ``int`` / ``float`` metadata (Dagster plots them), the rest as text."""
    return {name: _value(value) for name, value in values.items()}


def _value(value: int | float | str) -> dg.MetadataValue:
    if isinstance(value, int):
        return dg.MetadataValue.int(value)
    return dg.MetadataValue.float(value) if isinstance(value, float) else dg.MetadataValue.text(value)


def summary_metadata(outcomes: Iterable[Outcome]) -> dict[str, dg.MetadataValue]:
    """The figures every AI materialization records."""
    return as_metadata(summarise(outcomes))


def key_extras(app_name: str, key: TargetKey, outcome: Outcome) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if isinstance(key, AssistantMemberKey):
        extra.update(assistant_id=dg.MetadataValue.int(key.assistant_id), member_id=dg.MetadataValue.int(key.member_id))
    if app_name == "app6_note" and outcome.answer is not None:
        extra["score"] = dg.MetadataValue.float(float(outcome.answer.score or 0))
    return extra


def target_metadata(key: TargetKey, outcome: Outcome, extra: dict[str, Any]) -> dict[str, Any]:
    """One target's materialization: its own figures, status (and why it was skipped), cache row."""
    metadata: dict[str, Any] = summary_metadata([outcome])
    metadata.update(
        site_id=dg.MetadataValue.int(key.site_id),
        target_id=dg.MetadataValue.text(key.target_id),
        status=dg.MetadataValue.text(outcome.status),
    )
    if outcome.reason:
        metadata["skip_reason"] = dg.MetadataValue.text(outcome.reason)
    if outcome.answer is not None:
        metadata["cache_row_id"] = dg.MetadataValue.int(outcome.answer.id)
    metadata.update(extra)
    return metadata
