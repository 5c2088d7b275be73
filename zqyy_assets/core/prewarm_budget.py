"""A budget-aware prewarm: answer the most valuable partitions the day's budget can pay for.

Before a prewarm calls anything it estimates its tokens: a memoized answer (unchanged input)
costs nothing, every other one the app's recent average call (``llm/ledger.py``
``RECENT_AVERAGES_SQL``; no history yet: the budget's per-call reservation). When what is left
of the budget (daily and monthly tokens, in-flight reservations counted) covers the estimate,
everything is asked. Otherwise the answers are taken by value until the budget is spent and the
rest are skipped with the reason ``budget``, rather than started and refused one by one:

- area ``all`` (the whole site) before any single area;
- then the time dimensions in the order of ``APP2_PREWARM_PRIORITY`` (default ``this_month``
  and ``this_week`` first, the older windows after);
- then the areas in their usual order, then the sites (every site gets its most valuable
  answers before any site gets a less valuable one).

Shards of one prewarm plan at the same moment, each against the same budget. So a plan reserves
what it plans to spend (``biz.ai_budget_plan_reservation``, ``plan_and_reserve``): planning is
serialized by an advisory lock, and a plan counts what other runs' live reservations have not
spent yet (their reservation less the tokens the ledger already holds for their calls) as spent.
When even asking everything (nothing memoized) fits, that bound is reserved without looking at
each answer (``reserve_bound``). Together the shards plan within the budget; the guard
(``llm/budget.py``) still refuses any call past it, which only an estimate below the real usage
lets happen. A run releases its reservation when its step ends; one whose process died counts
until the run's deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Generic, TypeVar

from psycopg.pq import TransactionStatus

from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.llm.budget import (
    BUDGET_USED_SQL,
    HELD_TOKENS_SQL,
    BudgetLimits,
    BudgetStatus,
    budget_params,
    status_from_row,
)
from zqyy_assets.core.llm.ledger import RECENT_AVERAGES_SQL, recent_averages_params
from zqyy_assets.core.vocabulary import AREAS, TIME_DIMENSIONS, WHOLE_SITE

BUDGET_SKIP_REASON = "budget"
PLAN_LOCK_ID = 7_240_302  # project-wide advisory lock id: budget plans and their reservations
# How long the reservation of a run without a deadline (no max runtime, run monitoring off) lives
# if its process dies before releasing it: three hours, as long as the prewarm job may run.
NO_DEADLINE_RESERVATION_S = 3 * 3600.0
DEFAULT_PRIORITY: tuple[str, ...] = (
    "this_month",
    "this_week",
    "last_week",
    "last_month",
    "this_quarter",
    "last_3_months",
    "last_quarter",
    "last_6_months",
)

T = TypeVar("T")


def parse_priority(text: str) -> tuple[str, ...]:
    """``this_month,this_week,...``: known time dimensions, each once; those not named follow in
    the default order. An unknown name is an error naming ``APP2_PREWARM_PRIORITY``."""
    named = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [p for p in named if p not in TIME_DIMENSIONS]
    if unknown:
        raise ValueError(f"APP2_PREWARM_PRIORITY: unknown time dimension(s) {unknown}; known: {list(TIME_DIMENSIONS)}")
    ordered = list(dict.fromkeys(named))
    return (*ordered, *(d for d in DEFAULT_PRIORITY if d not in ordered))


def value_rank(time_dimension: str, area: str, site_id: int, priority: Sequence[str]) -> tuple[int, int, int, int]:
    """Smaller is more valuable: area ``all`` first, then the priority of the window."""
    return (
        0 if area == WHOLE_SITE else 1,
        priority.index(time_dimension) if time_dimension in priority else len(priority),
        AREAS.index(area) if area in AREAS else len(AREAS),
        site_id,
    )


def tokens_left(status: BudgetStatus) -> int:
    """What the daily and monthly token limits leave, whichever is less."""
    return max(0, min(status.daily_limit - status.daily_used, status.monthly_limit - status.monthly_used))


def average_tokens(conn: DictConnection, apps: Iterable[str], default: int) -> dict[str, int]:
    """Each app's recent average tokens per successful call; ``default`` for an app without one."""
    apps = sorted(set(apps))
    rows = conn.execute(RECENT_AVERAGES_SQL, recent_averages_params(apps, priced_only=False)).fetchall()
    found = {r["app_name"]: int(r["tokens_used"] or 0) for r in rows}
    return {app: found.get(app) or default for app in apps}


@dataclass(frozen=True)
class BudgetPlan(Generic[T]):
    kept: list[T]  # to ask, in their original order
    skipped: list[T]  # left for another day (reason ``budget``)
    estimate_tokens: int  # what asking everything would cost
    planned_tokens: int  # what the kept ones are expected to cost
    left_tokens: int  # what the budget leaves, others' reservations deducted
    others_reserved: int | None = None  # other runs' unspent reservations counted as spent (None: not reserved)

    def summary(self) -> str:
        if not self.skipped:
            text = (
                f"budget: {self.estimate_tokens} tokens estimated for {len(self.kept)} call(s), "
                f"{self.left_tokens} left; nothing skipped"
            )
        else:
            text = (
                f"budget: {self.estimate_tokens} tokens estimated, only {self.left_tokens} left; asking the "
                f"{len(self.kept)} most valuable answer(s) (~{self.planned_tokens} tokens), {len(self.skipped)} "
                f"skipped with reason '{BUDGET_SKIP_REASON}'"
            )
        if self.others_reserved is None:
            return text
        return (
            f"{text}; {self.planned_tokens} tokens reserved for this run, {self.others_reserved} reserved "
            "by other runs' plans counted as spent"
        )


def plan(items: Sequence[T], *, cost: Callable[[T], int], rank: Callable[[T], tuple], left: int) -> BudgetPlan[T]:
    """Everything when ``left`` covers it, else the most valuable (smallest ``rank``) prefix that fits."""
    estimate = sum(cost(i) for i in items)
    if estimate <= left:
        return BudgetPlan(list(items), [], estimate, estimate, left)
    chosen: set[int] = set()
    spent = 0
    for index in sorted(range(len(items)), key=lambda i: rank(items[i])):
        price = cost(items[index])
        if spent + price > left:
            break  # strictly by value: a cheaper, less valuable answer does not jump the queue
        chosen.add(index)
        spent += price
    kept = [item for i, item in enumerate(items) if i in chosen]
    skipped = [item for i, item in enumerate(items) if i not in chosen]
    return BudgetPlan(kept, skipped, estimate, spent, left)


# What the budget has used (``llm/budget.py``) and, in the same snapshot, what other runs' live
# plan reservations have not spent yet: a reservation less what the ledger holds for the calls its
# run made since (counted as the budget counts them), so that no token is counted twice.
_LEFT_SQL = (
    """
SELECT u.daily_used, u.monthly_used, u.daily_cost_cny, u.monthly_cost_cny, o.others_reserved
  FROM ("""
    + BUDGET_USED_SQL
    + """) u,
       (SELECT COALESCE(SUM(GREATEST(0, r.tokens - COALESCE(booked.tokens, 0))), 0)::bigint AS others_reserved
          FROM biz.ai_budget_plan_reservation r
          LEFT JOIN LATERAL (SELECT SUM("""
    + HELD_TOKENS_SQL
    + """) AS tokens
                               FROM biz.ai_call_ledger l
                              WHERE l.dagster_run_id = r.run_id AND l.called_at >= r.created_at) booked ON true
         WHERE r.run_id <> %(run_id)s AND r.expires_at > now()) o
"""
)

_RESERVE_SQL = """
INSERT INTO biz.ai_budget_plan_reservation (run_id, tokens, created_at, expires_at)
VALUES (%(run_id)s, %(tokens)s, now(), %(expires_at)s)
ON CONFLICT (run_id) DO UPDATE
   SET tokens = EXCLUDED.tokens, created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at
"""


@dataclass(frozen=True)
class Headroom:
    left: int  # what the budget leaves once other runs' reservations are counted as spent
    others_reserved: int  # the unspent part of other runs' live reservations


@contextmanager
def _planning(conn: DictConnection, run_id: str, limits: BudgetLimits) -> Iterator[Headroom]:
    """The budget's headroom for ``run_id``, inside one transaction serialized with every other
    plan; what the caller reserves in it is committed before the next plan reads.

    ``conn`` must be outside any transaction (autocommit, or idle), so that the reservation is
    committed when the block ends, not with some later work of the caller."""
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise ValueError("a budget plan needs a connection outside any transaction")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PLAN_LOCK_ID,))
        conn.execute("DELETE FROM biz.ai_budget_plan_reservation WHERE expires_at <= now()")
        row = conn.execute(_LEFT_SQL, {**budget_params(limits), "run_id": run_id}).fetchone()
        assert row is not None  # aggregates always return one row
        others = int(row["others_reserved"])
        yield Headroom(max(0, tokens_left(status_from_row(row, limits)) - others), others)


def _reserve(conn: DictConnection, run_id: str, tokens: int, expires_at: datetime) -> None:
    conn.execute(_RESERVE_SQL, {"run_id": run_id, "tokens": tokens, "expires_at": expires_at})


def plan_and_reserve(
    conn: DictConnection,
    run_id: str,
    items: Sequence[T],
    *,
    cost: Callable[[T], int],
    rank: Callable[[T], tuple],
    limits: BudgetLimits,
    expires_at: datetime,
) -> BudgetPlan[T]:
    """``plan`` against the headroom (other runs' live reservations counted as spent) and reserve
    the kept answers' tokens for ``run_id`` until it releases them (or ``expires_at``): plans
    made at the same moment together stay within the budget. Planning again for the same run
    replaces its reservation."""
    with _planning(conn, run_id, limits) as room:
        chosen = plan(items, cost=cost, rank=rank, left=room.left)
        _reserve(conn, run_id, chosen.planned_tokens, expires_at)
    return replace(chosen, others_reserved=room.others_reserved)


def reserve_bound(
    conn: DictConnection, run_id: str, bound: int, *, limits: BudgetLimits, expires_at: datetime
) -> Headroom | None:
    """Reserve ``bound`` (the most the run can spend, nothing memoized) when the headroom covers
    it, so that the run need not look at each answer; else reserve nothing and answer None."""
    with _planning(conn, run_id, limits) as room:
        if bound > room.left:
            return None
        _reserve(conn, run_id, bound, expires_at)
    return room


def release_reservation(conn: DictConnection, run_id: str) -> None:
    """The run's plan is done with (its step ended): its reservation counts no more."""
    conn.execute("DELETE FROM biz.ai_budget_plan_reservation WHERE run_id = %s", (run_id,))
