"""The app2 prewarm's shards: the active sites split into runs of at most ``shard_size`` sites.

One run per shard, so a chain's prewarm spreads across run workers (processes here, pods with
Dagster's Kubernetes launcher) while all of them share the one cap on calls in flight and the
one budget (``core/llm``). A shard is a plain list of site ids carried by the run's tags
(``zqyy/site_ids``, ``zqyy/shard``): each shard's run is idempotent (answers whose input did not
change are memo hits) and can be re-run alone. Sites are taken in id order, so the same sites
give the same shards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int
    site_ids: tuple[int, ...]

    @property
    def label(self) -> str:
        """``2/5``: the run's ``zqyy/shard`` tag."""
        return f"{self.index}/{self.count}"


def shard_sites(site_ids: Iterable[int], shard_size: int) -> list[Shard]:
    """The sites (in id order, each once) in shards of at most ``shard_size``, as even as possible."""
    if shard_size < 1:
        raise ValueError(f"shard size must be at least 1, got {shard_size}")
    sites = sorted(set(site_ids))
    if not sites:
        return []
    count = -(-len(sites) // shard_size)
    # Even shards (sizes differ by at most one) rather than full ones and a small remainder.
    base, extra = divmod(len(sites), count)
    shards, start = [], 0
    for index in range(count):
        size = base + (index < extra)
        shards.append(Shard(index + 1, count, tuple(sites[start : start + size])))
        start += size
    return shards
