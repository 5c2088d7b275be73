"""Materialization metadata of the AI assets, from the plain figures ``core.answering`` sums up,
and a short markdown preview of what was produced (``core.answer_preview``), bounded in size."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dagster as dg

from zqyy_assets.core.answer_preview import answer_preview, bounded
from zqyy_assets.core.answering import Outcome, summarise
from zqyy_assets.core.cache import CachedAnswer
from zqyy_assets.core.grounding import Verdict
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
        metadata.update(grounding_metadata(outcome.answer))
        if preview := answer_preview(outcome.answer.cache_type, outcome.answer.result_json):
            metadata["preview"] = dg.MetadataValue.md(preview)
    metadata.update(extra)
    return metadata


def grounding_metadata(answer: CachedAnswer) -> dict[str, dg.MetadataValue]:
    """The answer's grounded-numbers verdict (``core/grounding``) and whether it is served."""
    if answer.grounding is None:
        return {}
    verdict = Verdict.from_json(answer.grounding)
    metadata = {
        "grounded": dg.MetadataValue.bool(verdict.grounded),
        "numbers_cited": dg.MetadataValue.int(verdict.numbers),
        "cache_status": dg.MetadataValue.text(answer.status),
    }
    if not verdict.grounded:
        metadata["ungrounded_numbers"] = dg.MetadataValue.md(
            "\n".join(f"- `{u.number}` ({u.field}): {u.sentence}" for u in verdict.ungrounded)
        )
    return metadata


def sites_preview(outcomes: Iterable[Outcome]) -> dict[str, dg.MetadataValue]:
    """A partition answered for several sites (App2): the preview of the first site's answer, naming
    the site and how many others answered; nothing when no site has an answer."""
    answered = sorted((o for o in outcomes if o.answer is not None), key=lambda o: o.site_id)
    if not answered:
        return {}
    first = answered[0]
    assert first.answer is not None
    others = f" (and {len(answered) - 1} more site(s))" if len(answered) > 1 else ""
    body = answer_preview(first.answer.cache_type, first.answer.result_json)
    return {"preview": dg.MetadataValue.md(bounded(f"**site {first.site_id}**{others}\n{body}"))}
