"""Budget plans that reserve what they plan to spend (``core/prewarm_budget.py``): runs planning
at the same moment (the shards of one prewarm) together plan within the budget."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from zqyy_assets.core import db
from zqyy_assets.core.llm.budget import BudgetLimits
from zqyy_assets.core.prewarm_budget import (
    BUDGET_SKIP_REASON,
    PLAN_LOCK_ID,
    BudgetPlan,
    plan_and_reserve,
    release_reservation,
    reserve_bound,
)

LIMITS = BudgetLimits(daily_limit=1_000, monthly_limit=100_000, reserve_tokens=100)
LATER = datetime.now(UTC) + timedelta(hours=1)
# Eight answers of 100 tokens for a run, by value: answer 0 the most valuable.
ANSWERS = list(range(8))


def _plan(conn: db.DictConnection, run_id: str, answers: list[int] = ANSWERS) -> BudgetPlan[int]:
    return plan_and_reserve(
        conn, run_id, answers, cost=lambda a: 100, rank=lambda a: (a,), limits=LIMITS, expires_at=LATER
    )


def _book(conn: db.DictConnection, run_id: str, tokens: list[int], *, status: str = "success") -> None:
    """Calls of ``run_id`` in the ledger: finished ones used ``tokens``, running ones reserve them."""
    for t in tokens:
        used, reserved = (0, t) if status == "running" else (t, 0)
        conn.execute(
            """INSERT INTO biz.ai_call_ledger (site_id, app_name, provider, status, tokens_in, tokens_out,
                                                tokens_reserved, dagster_run_id)
               VALUES (1, 'app2_finance', 'dashscope', %s, %s, 0, %s, %s)""",
            (status, used, reserved, run_id),
        )


def _reservations(conn: db.DictConnection) -> dict[str, int]:
    rows = conn.execute("SELECT run_id, tokens FROM biz.ai_budget_plan_reservation").fetchall()
    return {r["run_id"]: r["tokens"] for r in rows}


def test_back_to_back_plans_share_what_is_left_until_the_first_is_released(db_url: str) -> None:
    with db.connect(db_url, autocommit=True) as conn:
        first = _plan(conn, "run-a")
        second = _plan(conn, "run-b")  # no call in between: run-a has spent nothing yet

        assert (first.kept, first.planned_tokens, first.others_reserved) == (ANSWERS, 800, 0)
        # run-b counts run-a's 800 as spent: 200 left, its two most valuable answers
        assert (second.kept, second.skipped, second.left_tokens, second.others_reserved) == (
            [0, 1],
            ANSWERS[2:],
            200,
            800,
        )
        assert first.planned_tokens + second.planned_tokens <= LIMITS.daily_limit
        assert f"6 skipped with reason '{BUDGET_SKIP_REASON}'" in second.summary()
        assert "200 tokens reserved for this run, 800 reserved by other runs' plans counted as spent" in (
            second.summary()
        )
        assert _reservations(conn) == {"run-a": 800, "run-b": 200}

        release_reservation(conn, "run-a")  # run-a's step ended
        again = _plan(conn, "run-b")  # its own reservation is replaced, not counted
        assert (again.kept, again.others_reserved, again.left_tokens) == (ANSWERS, 0, 1_000)
        assert _reservations(conn) == {"run-b": 800}


def test_an_expired_reservation_counts_no_more(db_url: str) -> None:
    with db.connect(db_url, autocommit=True) as conn:
        _plan(conn, "run-a")
        assert _plan(conn, "run-b").kept == [0, 1]
        # run-a's process died; its deadline has passed
        conn.execute(
            "UPDATE biz.ai_budget_plan_reservation SET expires_at = now() - interval '1 second' WHERE run_id = 'run-a'"
        )

        again = _plan(conn, "run-b")

        assert (again.kept, again.others_reserved) == (ANSWERS, 0)
        assert _reservations(conn) == {"run-b": 800}  # the expired one swept


def test_booked_calls_are_not_counted_twice(db_url: str) -> None:
    with db.connect(db_url, autocommit=True) as conn:
        assert _plan(conn, "run-a").planned_tokens == 800
        # run-a has finished three calls and has two in flight (each reserving 100 at the guard):
        # 500 of its 800 are in the ledger, 300 still reserved by its plan
        _book(conn, "run-a", [100, 100, 100])
        _book(conn, "run-a", [100, 100], status="running")
        _book(conn, "other-run", [50])  # a member chain's call, no plan of its own

        second = _plan(conn, "run-b")

        assert second.others_reserved == 300
        assert second.left_tokens == 1_000 - 550 - 300
        assert second.kept == [0]

        # run-a spent more than it planned: what it spent counts, its plan reserves nothing more
        _book(conn, "run-a", [200, 200, 200])
        assert _plan(conn, "run-b").others_reserved == 0


def test_calls_before_the_plan_do_not_spend_its_reservation(db_url: str) -> None:
    with db.connect(db_url, autocommit=True) as conn:
        _book(conn, "run-a", [100, 100])  # a first attempt of the run's step, before it plans again
        assert _plan(conn, "run-a").planned_tokens == 800
        second = _plan(conn, "run-b")
        assert (second.others_reserved, second.left_tokens) == (800, 0)
        assert second.kept == [] and second.skipped == ANSWERS


def test_a_bound_is_reserved_only_when_it_fits(db_url: str) -> None:
    with db.connect(db_url, autocommit=True) as conn:
        room = reserve_bound(conn, "run-a", 700, limits=LIMITS, expires_at=LATER)
        assert room is not None and (room.left, room.others_reserved) == (1_000, 0)
        assert reserve_bound(conn, "run-b", 400, limits=LIMITS, expires_at=LATER) is None  # 300 left
        assert _reservations(conn) == {"run-a": 700}  # nothing reserved for run-b
        assert _plan(conn, "run-b").kept == [0, 1, 2]


def test_a_plan_reads_the_budget_after_the_plan_before_it_committed(db_url: str) -> None:
    """Planning is serialized: a plan waiting for the lock sees what the holder reserved."""
    plans: list[BudgetPlan[int]] = []
    with db.connect(db_url, autocommit=True) as holder, db.connect(db_url, autocommit=True) as watcher:
        with holder.transaction():
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (PLAN_LOCK_ID,))

            def plan_b() -> None:
                with db.connect(db_url, autocommit=True) as conn:
                    plans.append(_plan(conn, "run-b"))

            waiting = threading.Thread(target=plan_b)
            waiting.start()
            deadline = time.monotonic() + 30
            while not watcher.execute(
                "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s",
                (PLAN_LOCK_ID,),
            ).fetchone()["n"]:
                assert time.monotonic() < deadline, "run-b's plan never waited for the lock"
                time.sleep(0.02)
            # run-a's plan commits its reservation while run-b's waits
            holder.execute(
                "INSERT INTO biz.ai_budget_plan_reservation (run_id, tokens, expires_at) VALUES ('run-a', 900, %s)",
                (LATER,),
            )
        waiting.join(timeout=30)
    assert not waiting.is_alive()
    [second] = plans
    assert (second.others_reserved, second.kept) == (900, [0])


def test_a_plan_refuses_a_connection_inside_a_transaction(db_url: str) -> None:
    with db.connect(db_url) as conn:
        conn.execute("SELECT 1")  # an implicit transaction is open
        with pytest.raises(ValueError, match="outside any transaction"):
            _plan(conn, "run-a")
