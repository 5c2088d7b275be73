"""The app2 prewarm's budget plan reserves what it will spend (``core/prewarm_budget.py``): it plans
around other runs' live reservations, holds its own while it asks (until the run's deadline at
the latest) and releases it when its step ends, failed or not."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import pytest

from zqyy_assets.core import db
from zqyy_assets.core.tags import MAX_RUNTIME_TAG
from zqyy_assets.defs.ai.assets import ai_assets
from zqyy_assets.defs.ai.jobs import APP2_PREWARM_MAX_RUNTIME_S, ai_jobs, app2_prewarm_run_request
from zqyy_assets.defs.ai.resources import LLMResource
from zqyy_assets.defs.ods.assets import ods_assets
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource
from zqyy_assets.testing.fake_dashscope import FakeDashScope


def _reservations(db_url: str) -> dict[str, dict]:
    with db.connect(db_url) as conn:
        rows = conn.execute("SELECT * FROM biz.ai_budget_plan_reservation").fetchall()
    return {r["run_id"]: r for r in rows}


def _seen_at_first_request(fake: FakeDashScope, db_url: str, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """The reservations as they stand when the fake receives the run's first request."""
    seen: list[dict] = []
    record, first = fake.record, threading.Lock()

    def record_and_look(entry: dict) -> None:
        with first:  # the run's first calls arrive at once
            if not seen:
                seen.append(_reservations(db_url))
        record(entry)

    monkeypatch.setattr(fake, "record", record_and_look)
    return seen


def _prewarm(db_url: str, llm: LLMResource) -> dg.ExecuteInProcessResult:
    """The prewarm job's run (with its max runtime tag) in process."""
    resources = {
        "llm": llm,
        "postgres": PostgresResource(database_url=db_url),
        "venue_calendar": VenueCalendarResource(),
    }
    defs = dg.Definitions(assets=[*ods_assets, *ai_assets], jobs=ai_jobs, resources=resources)
    request = app2_prewarm_run_request(trigger="schedule")
    job = defs.resolve_job_def(request.job_name)
    assert job.tags[MAX_RUNTIME_TAG] == str(APP2_PREWARM_MAX_RUNTIME_S)
    return job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), tags=request.tags, raise_on_error=False)


def _observation(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    [observation] = [
        e.asset_observation_data.asset_observation
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    return {k: v.value for k, v in observation.metadata.items()}


def test_a_run_plans_around_another_runs_reservation_and_releases_its_own(
    venue: str, make_llm: Callable[..., LLMResource], fake: FakeDashScope, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 100 tokens a call and as the estimate; 1,000 left today, 400 of them reserved by another
    # shard's plan (its process running, nothing spent yet): this run asks 6 answers, not 10.
    fake.script("*", tokens=(60, 40))
    with db.connect(venue, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO biz.ai_budget_plan_reservation (run_id, tokens, expires_at) VALUES ('other-shard', 400, %s)",
            (datetime.now(UTC) + timedelta(hours=1),),
        )
    seen = _seen_at_first_request(fake, venue, monkeypatch)
    started = datetime.now(UTC)

    result = _prewarm(venue, make_llm(daily_token_limit=1_000, budget_reserve_tokens=100))

    assert result.success and fake.count() == 6
    md = _observation(result)
    assert md["budget_skipped_answers"] == 144 - 6
    assert "only 600 left" in md["budget"]
    assert "600 tokens reserved for this run, 400 reserved by other runs' plans counted as spent" in md["budget"]
    # while it asked, its reservation stood next to the other's, until the run's deadline
    [during] = seen
    assert {run_id: r["tokens"] for run_id, r in during.items()} == {"other-shard": 400, result.run_id: 600}
    expires = during[result.run_id]["expires_at"]
    deadline = started + timedelta(seconds=APP2_PREWARM_MAX_RUNTIME_S)
    assert deadline - timedelta(minutes=1) < expires < deadline + timedelta(minutes=1)
    # its step ended: its own reservation is gone, the other shard's stays
    assert set(_reservations(venue)) == {"other-shard"}
    with db.connect(venue) as conn:
        ledger = conn.execute("SELECT status, sum(tokens_used) AS tokens FROM biz.ai_call_ledger GROUP BY 1").fetchall()
    assert [(r["status"], r["tokens"]) for r in ledger] == [("success", 600)]  # nothing refused halfway


def test_a_failed_step_releases_its_reservation(
    venue: str, make_llm: Callable[..., LLMResource], fake: FakeDashScope, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A budget far above the estimate: the run reserves its bound (144 answers at 100) without
    # looking at each answer; every call is refused by the provider (a permanent error).
    fake.script("*", mix={"401": 1.0}, seed=1)
    seen = _seen_at_first_request(fake, venue, monkeypatch)

    result = _prewarm(venue, make_llm(budget_reserve_tokens=100))

    assert not result.success
    [during] = seen
    assert {run_id: r["tokens"] for run_id, r in during.items()} == {result.run_id: 144 * 100}
    assert _reservations(venue) == {}
