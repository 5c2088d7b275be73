"""Memoization: which cached row answers an ask instead of a call. A forced run asks again what was
cached before it, but not what it cached itself (its step retry asks only the failed keys)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from zqyy_assets.core import cache
from zqyy_assets.core.answering import Ask, RunInfo, memo_hit, prepare

ASK = Ask(site_id=1, app_name="app3_clue", target_id="100", prompt={"visits": 3}, prompt_version="p1")


def _row(prepared, run_id: str | None) -> cache.CachedAnswer:
    return cache.CachedAnswer(
        id=7, site_id=1, cache_type="app3_clue", target_id="100", input_hash=prepared.hash,
        prompt_version=prepared.version, result_json={}, score=None, status="valid", triggered_by="consumption",
        provider="dashscope", model="qwen-plus", tokens_in=10, tokens_out=5, latency_ms=3, dagster_run_id=run_id,
        created_at=datetime.now(UTC),
    )  # fmt: skip


def test_a_forced_run_reuses_only_what_it_cached_itself() -> None:
    prepared = prepare(ASK, "dashscope")
    forced = RunInfo(provider="dashscope", trigger="consumption", force=True, dagster_run_id="run-2")
    assert memo_hit(prepared, _row(prepared, "run-1"), forced) is None  # from before this run: asked again
    hit = memo_hit(prepared, _row(prepared, "run-2"), forced)  # this run's own answer (a step retry)
    assert hit is not None and hit.status == "hit" and hit.answer.id == 7
    assert memo_hit(prepared, _row(prepared, None), dataclasses.replace(forced, dagster_run_id=None)) is None


def test_an_unforced_run_reuses_the_same_input_only() -> None:
    prepared = prepare(ASK, "dashscope")
    run = RunInfo(provider="dashscope", trigger="consumption", force=False, dagster_run_id="run-2")
    assert memo_hit(prepared, _row(prepared, "run-1"), run) is not None
    changed = prepare(dataclasses.replace(ASK, prompt={"visits": 4}), "dashscope")
    assert memo_hit(changed, _row(prepared, "run-1"), run) is None
