"""Partitions of the AI assets (key formats and parsing: ``zqyy_assets.core.partition_keys``)."""

from __future__ import annotations

import dagster as dg

from zqyy_assets.core.partition_keys import app2_key_range
from zqyy_assets.core.tags import RANGE_END_TAG, RANGE_START_TAG
from zqyy_assets.core.vocabulary import (
    AREAS,
    ASSISTANT_MEMBERS,
    MEMBERS,
    TIME_DIMENSIONS,
)

app2_partitions = dg.MultiPartitionsDefinition(
    {
        "time_dimension": dg.StaticPartitionsDefinition(list(TIME_DIMENSIONS)),
        "area": dg.StaticPartitionsDefinition(list(AREAS)),
    }
)
members_partitions = dg.DynamicPartitionsDefinition(name=MEMBERS)
assistant_members_partitions = dg.DynamicPartitionsDefinition(name=ASSISTANT_MEMBERS)


def app2_full_range_tags() -> dict[str, str]:
    """Run tags that make one run of all 72 app2 partitions (first key .. last key): a
    multi-partition range is the rectangle between the two keys on each dimension."""
    first, last = app2_key_range()
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}
