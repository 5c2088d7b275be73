"""The prewarm's shards: every site once, in id order, shards as even as possible."""

from __future__ import annotations

import pytest

from zqyy_assets.core.prewarm_shards import shard_sites


def test_sites_split_into_even_shards_in_id_order() -> None:
    shards = shard_sites([7, 3, 1, 5, 9, 2, 3], shard_size=2)

    assert [s.label for s in shards] == ["1/3", "2/3", "3/3"]
    assert [s.site_ids for s in shards] == [(1, 2), (3, 5), (7, 9)]  # 6 sites in 3 shards of 2
    assert [s.site_ids for s in shard_sites(range(1, 8), 3)] == [(1, 2, 3), (4, 5), (6, 7)]
    assert shard_sites([], 10) == []
    assert [s.site_ids for s in shard_sites([4, 1], 100)] == [(1, 4)]


@pytest.mark.parametrize("size", [0, -1])
def test_a_shard_size_below_one_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match=f"shard size must be at least 1, got {size}"):
        shard_sites([1], size)
