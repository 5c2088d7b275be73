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

Budget refusals still guard each call (``llm/budget.py``): shards planning at once may together
overrun the estimate, and then the guard refuses what is left.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.llm.budget import BudgetStatus
from zqyy_assets.core.llm.ledger import RECENT_AVERAGES_SQL, recent_averages_params
from zqyy_assets.core.vocabulary import AREAS, TIME_DIMENSIONS, WHOLE_SITE

BUDGET_SKIP_REASON = "budget"
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
    left_tokens: int

    def summary(self) -> str:
        if not self.skipped:
            return (
                f"budget: {self.estimate_tokens} tokens estimated for {len(self.kept)} call(s), "
                f"{self.left_tokens} left; nothing skipped"
            )
        return (
            f"budget: {self.estimate_tokens} tokens estimated, only {self.left_tokens} left; asking the "
            f"{len(self.kept)} most valuable answer(s) (~{self.planned_tokens} tokens), {len(self.skipped)} skipped "
            f"with reason '{BUDGET_SKIP_REASON}'"
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
