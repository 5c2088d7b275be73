"""The sharded prewarm with the real daemon: the schedule's one run per shard, dequeued by the
queued coordinator and run as concurrent run processes, all holding one in-flight cap, taking
turns at it (``core/llm/inflight.py``), and planning one daily budget between them
(``core/prewarm_budget.py``). One daemon and one tick for both: each waits up to a minute.

The schedule fires every minute here (``APP2_PREWARM_CRON``) with one site a shard; the fake
DashScope answers after 1.5 s (a run alone takes ~27 s, well past the second run's start even on a
loaded machine) and counts the calls in flight at once, which the shared cap
(``ZQYY_LLM_INFLIGHT_CEILING=4``) keeps at 4 or fewer although each run has 8 threads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import NoReturn

import dagster as dg
import pytest

from tests.defs.events.test_run_deadline import UNTHROTTLED
from zqyy_assets.core import db
from zqyy_assets.core.answer_audit import app2_coverage
from zqyy_assets.testing.daemon_harness import DaemonHarness, daemon_harness
from zqyy_assets.testing.fake_dashscope import FakeDashScope, demo_env
from zqyy_assets.tools.dws_refresh import materialize_dws

# A second active site with a sale in March, so both shards have figures to ask about.
SECOND_SITE_SQL = """
INSERT INTO ods.sites (site_id, name) VALUES (2, '第二门店');
INSERT INTO ods.areas VALUES (2, 'vip', 'VIP');
INSERT INTO ods.tables VALUES (2, 51, 'vip', 'V9', 2.00);
INSERT INTO ods.settlements (site_id, settlement_id, member_id, area_code, table_id, started_at, ended_at,
    settled_at, table_minutes, table_fee, assistant_fee, goods_amount, discount, total, pay_method) VALUES
 (2, 1, NULL, 'vip', 51, '2026-03-02 20:00+08', '2026-03-02 21:00+08', '2026-03-02 21:00+08',
  60, 120.00, 0, 0, 0, 120.00, '现金');
"""


def _runs(db_url: str) -> list[dict]:
    with db.connect(db_url) as conn:
        return conn.execute(
            """SELECT dagster_run_id, min(called_at) AS first, max(called_at) AS last, count(*) AS calls,
                      count(DISTINCT site_id) AS sites, count(*) FILTER (WHERE status <> 'success') AS not_ok
                 FROM biz.ai_call_ledger GROUP BY dagster_run_id ORDER BY min(called_at)"""
        ).fetchall()


def _calls_between(db_url: str, start: datetime, end: datetime) -> list[str]:
    """The run of each call started from ``start`` to ``end``, in order."""
    with db.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT dagster_run_id FROM biz.ai_call_ledger WHERE called_at BETWEEN %s AND %s ORDER BY called_at, id",
            (start, end),
        ).fetchall()
    return [r["dagster_run_id"] for r in rows]


@contextmanager
def _two_shards(
    db_url: str, instance: dg.DagsterInstance, tmp_path: Path, env: dict[str, str]
) -> Iterator[DaemonHarness]:
    """Two sites, one shard each, the schedule firing every minute and the cap at 4: the daemon
    started, its harness yielded (stopped on exit)."""
    with db.transaction(db_url) as conn:
        conn.execute(SECOND_SITE_SQL)
    assert materialize_dws(instance, db_url, date(2026, 3, 2), date(2026, 3, 3)).success
    with daemon_harness(
        database_url=db_url,
        dagster_database=db.database_name(db_url) + "_dagster",
        home=tmp_path / "dagster_home",
        env={
            **UNTHROTTLED,
            "APP2_PREWARM_CRON": "* * * * *",
            "APP2_PREWARM_SHARD_SIZE": "1",
            "ZQYY_LLM_INFLIGHT_START": "4",
            "ZQYY_LLM_INFLIGHT_CEILING": "4",
            **env,
        },
        run_coordinator_config={"dequeue_interval_seconds": 1},
    ) as harness:
        harness.start()
        yield harness


def _fail(harness: DaemonHarness, what: str) -> NoReturn:
    errors = [ln for ln in harness.log_text().splitlines() if "Error" in ln or "Traceback" in ln]
    pytest.fail(f"{what}: {_runs(harness.env['DATABASE_URL'])}; {errors[-15:]}")


def test_shards_run_as_concurrent_processes_under_one_cap_and_one_budget(
    db_url, venue, instance, tmp_path, monkeypatch
) -> None:
    # 100 tokens a call and as the reservation (no history: the estimate too); the day's limit
    # pays for 108 of the 144 answers, one and a half shards. Both shards plan at once.
    with FakeDashScope(latency_ms=1500, qps=100_000) as fake:
        fake.script("*", tokens=(60, 40))
        budget = {"ZQYY_LLM_DAILY_TOKEN_LIMIT": "10800", "ZQYY_LLM_BUDGET_RESERVE_TOKENS": "100"}
        with _two_shards(db_url, instance, tmp_path, {**demo_env(fake.base_url), **budget}) as harness:
            monkeypatch.setenv("DAGSTER_PG_URL", harness.dagster_pg_url)
            with dg.DagsterInstance.from_config(str(harness.home)) as dagster:
                deadline = time.monotonic() + 300  # the next minute's tick, then 108 calls at 4 at once
                while len(runs := dagster.get_runs()) < 2 or not all(r.is_finished for r in runs):
                    if time.monotonic() > deadline:
                        _fail(harness, "the shards did not finish")
                    time.sleep(0.5)
                skipped = {r.run_id: _budget_skipped(dagster, r.run_id) for r in runs}
        sent, quota = fake.count(), fake.quota
        assert quota is not None

    with db.connect(db_url) as conn:
        ledger = conn.execute(
            """SELECT dagster_run_id, status, count(*) AS calls, sum(tokens_in + tokens_out) AS tokens
                 FROM biz.ai_call_ledger GROUP BY 1, 2"""
        ).fetchall()
        held = conn.execute("SELECT held FROM biz.ai_inflight_cap").fetchone()["held"]
        reservations = conn.execute("SELECT count(*) AS n FROM biz.ai_budget_plan_reservation").fetchone()["n"]
        coverage = app2_coverage(conn)

    # The cap: two run processes asking at the same time, taking turns at it. Once both ask, a
    # run does not keep the slots it frees (its own poller is woken first): while both ask, each
    # gets a fair share of the calls started...
    runs = _runs(db_url)
    assert len(runs) == 2 and runs[0]["dagster_run_id"] != runs[1]["dagster_run_id"], runs
    both_from, both_to = runs[1]["first"], min(r["last"] for r in runs)
    assert both_from < both_to, runs  # the two runs overlap
    both = _calls_between(db_url, both_from, both_to)
    for run in runs:
        assert both.count(run["dagster_run_id"]) >= len(both) / 3, (runs, len(both))
    # ...and never more than the one cap in flight at the provider, all of them together.
    assert 2 <= quota.peak_in_flight <= 4

    # The budget: the two processes together spent the day's limit and not a token more...
    answered = [r for r in ledger if r["status"] == "success"]
    assert sum(r["calls"] for r in answered) == 108 == sent
    assert sum(r["tokens"] for r in answered) == 10_800
    # ...and planned it between them: whichever shard planned second counted the first one's
    # reservation (or what it had already spent) and skipped what the budget could not pay for
    # with reason 'budget'. No call was refused halfway: the fake bills exactly 100 tokens a
    # call, the estimate (the reservation with no history, then the recent average), so the
    # plans add up to the limit exactly and every admission finds it not yet reached.
    assert {r["status"] for r in ledger} == {"success"}, ledger
    assert sum(skipped.values()) == 144 - 108, skipped
    per_run = dict(skipped)
    for row in ledger:
        per_run[row["dagster_run_id"]] += row["calls"]
    assert sorted(per_run.values()) == [72, 72], (ledger, skipped)  # every answer accounted for
    # Each shard's coverage check counts its site: one whole, one as far as the budget went.
    assert sorted((r["done"], r["total"]) for r in coverage) == [(36, 72), (72, 72)], coverage
    assert held == 0
    assert reservations == 0  # each run released its plan's reservation when its step ended


def _budget_skipped(dagster: dg.DagsterInstance, run_id: str) -> int:
    """The answers the run planned away for the budget (its observation's metadata)."""
    records = dagster.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION).records
    for record in records:
        observation = record.event_log_entry.asset_observation
        if observation is not None and "budget_skipped_answers" in observation.metadata:
            return int(observation.metadata["budget_skipped_answers"].value)
    raise AssertionError(f"run {run_id} reported no budget observation")
