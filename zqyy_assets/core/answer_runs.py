"""The bookkeeping of an AI run over many targets, without Dagster: which sites it asks, when a
partition's answers are all in, and how its failures read.

``defs/ai`` turns these into materializations, checks and ``dg.Failure``s.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable
from typing import Any, Generic, TypeVar

from zqyy_assets.core.answering import Outcome
from zqyy_assets.core.db import DictConnection

K = TypeVar("K", bound=Hashable)


def active_sites(conn: DictConnection) -> list[dict[str, Any]]:
    return conn.execute("SELECT site_id, name FROM ods.sites WHERE is_active ORDER BY site_id").fetchall()


def parse_site_ids(raw: str) -> set[int]:
    """Site ids separated by commas (``1,2``); ``ValueError`` for anything else."""
    return {int(part) for part in raw.split(",") if part.strip()}


class PartitionProgress(Generic[K]):
    """Outcomes grouped by partition: a partition is complete once every answer it waits for landed.

    A run asks every site for each partition; a site with nothing to ask is a ``skipped``
    outcome up front, every other one is awaited.
    """

    def __init__(self, keys: Iterable[K]) -> None:
        self.keys = list(keys)
        self.outcomes: dict[K, list[Outcome]] = defaultdict(list)
        self._pending: Counter[K] = Counter()

    def skip(self, key: K, outcome: Outcome) -> None:
        self.outcomes[key].append(outcome)

    def expect(self, key: K) -> None:
        self._pending[key] += 1

    def expected(self) -> int:
        return sum(self._pending.values())

    def nothing_pending(self) -> list[K]:
        """Partitions complete before any call: every site was skipped."""
        return [key for key in self.keys if not self._pending[key]]

    def land(self, key: K, outcome: Outcome) -> bool:
        """Record one answer's outcome; True when it was the partition's last."""
        self.outcomes[key].append(outcome)
        self._pending[key] -= 1
        return not self._pending[key]

    def failed(self, key: K) -> bool:
        return any(o.status == "failed" for o in self.outcomes[key])

    def all_outcomes(self) -> list[Outcome]:
        return [o for group in self.outcomes.values() for o in group]


def failure_table(failures: list[Outcome], limit: int = 50) -> str:
    """The failed answers as a Markdown table (site, target, app, error), the first ``limit``."""
    lines = ["| site | target | app | error |", "| --- | --- | --- | --- |"]
    for o in failures[:limit]:
        reason = (o.reason or "").replace("|", "/").replace("\n", " ")[:300]
        lines.append(f"| {o.site_id} | {o.target_id} | {o.app_name} | {reason} |")
    if len(failures) > limit:
        lines.append(f"| ... | {len(failures) - limit} more | | |")
    return "\n".join(lines)


def describe_target_failures(app_name: str, total: int, failed: list[tuple[str, Outcome]], shown: int = 10) -> str:
    """``app3_clue: 1 of 3 target(s) failed: 1-101: <reason>`` (partition keys with their reasons)."""
    described = "; ".join(f"{key}: {o.reason}" for key, o in failed[:shown])
    more = f"; and {len(failed) - shown} more" if len(failed) > shown else ""
    return f"{app_name}: {len(failed)} of {total} target(s) failed: {described}{more}"
