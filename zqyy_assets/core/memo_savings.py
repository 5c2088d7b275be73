"""What memoization saved: each memo hit's avoided call, priced, one row in ``biz.ai_memo_hits``.

A hit (an unchanged input's cached answer, no call) would have cost what the app's calls cost
lately: the averages of its last ``ledger.RECENT_CALLS`` successful DashScope calls within
``ledger.RECENT_DAYS`` (tokens in, tokens out, CNY). An app with no such call falls back to the
cached answer's own tokens, priced at its model. Under the offline provider a call costs
nothing, so a hit saves nothing (it is still counted).

One ``MemoSavings`` per run (``answering.iter_answers``): each app's averages are read once,
and the hit rows are written in batches (a prewarm on unchanged data is 72 hits per site).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zqyy_assets.core.cache import CachedAnswer
from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.llm import ledger
from zqyy_assets.core.pricing import PriceTable

BATCH = 200  # hit rows written at once


@dataclass(frozen=True)
class Avoided:
    tokens_in: int
    tokens_out: int
    cost_cny: float

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


NOTHING = Avoided(0, 0, 0.0)


def recent_average(conn: DictConnection, app_name: str) -> Avoided | None:
    """The app's average call lately (tokens in, out, CNY), or None when it made none."""
    row = conn.execute(
        ledger.RECENT_AVERAGES_SQL, ledger.recent_averages_params([app_name], priced_only=True)
    ).fetchone()
    if row is None:
        return None
    return Avoided(int(row["tokens_in"]), int(row["tokens_out"]), round(float(row["cost_cny"]), 6))


@dataclass
class MemoSavings:
    """One run's memo hits: what each avoided, and their rows."""

    prices: PriceTable
    provider: str
    trigger: str
    dagster_run_id: str | None
    _averages: dict[str, Avoided | None] = field(default_factory=dict)
    _pending: list[dict[str, Any]] = field(default_factory=list)

    def avoided(self, conn: DictConnection, cached: CachedAnswer) -> Avoided:
        if self.provider == "offline" or cached.provider == "offline":  # the offline analyst costs nothing
            return NOTHING
        app = cached.cache_type
        if app not in self._averages:
            self._averages[app] = recent_average(conn, app)
        average = self._averages[app]
        if average is not None:
            return average
        cost = self.prices.cost(cached.model, cached.tokens_in, cached.tokens_out)
        return Avoided(cached.tokens_in, cached.tokens_out, cost)

    def record(self, conn: DictConnection, cached: CachedAnswer) -> Avoided:
        """Note one hit (its row is written with the next batch); returns what it avoided."""
        avoided = self.avoided(conn, cached)
        self._pending.append(
            {
                "site_id": cached.site_id,
                "app_name": cached.cache_type,
                "target_id": cached.target_id,
                "cache_id": cached.id,
                "run": self.dagster_run_id,
                "trigger": self.trigger,
                "tin": avoided.tokens_in,
                "tout": avoided.tokens_out,
                "cost": avoided.cost_cny,
            }
        )
        if len(self._pending) >= BATCH:
            self.flush(conn)
        return avoided

    def flush(self, conn: DictConnection) -> None:
        rows, self._pending = self._pending, []
        if not rows:
            return
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO biz.ai_memo_hits (site_id, app_name, target_id, cache_id, dagster_run_id, trigger_type,
                                                 tokens_in_avoided, tokens_out_avoided, cost_avoided_cny)
                   VALUES (%(site_id)s, %(app_name)s, %(target_id)s, %(cache_id)s, %(run)s, %(trigger)s,
                           %(tin)s, %(tout)s, %(cost)s)""",
                rows,
            )
