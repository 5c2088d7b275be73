"""Partitions of the AI assets (key formats and parsing: ``zqyy_assets.core.partition_keys``)."""

from __future__ import annotations

import dagster as dg

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
