"""Partitions of the AI assets and the partition-key formats the sensors use.

- ``app2_finance``: ``time_dimension`` x ``area`` (8 x 9 = 72 static keys); each partition answers
  for every active site.
- member apps: dynamic partitions ``members``, key ``"{site_id}-{member_id}"``.
- assistant x member apps: dynamic partitions ``assistant_members``, key
  ``"{site_id}-{assistant_id}_{member_id}"``; the part after the site is the cache ``target_id``.

Sites are part of the member keys (member ids are per site), not of the app2 keys: the 72 app2
partitions are the same for every site and one run answers them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dagster as dg

TIME_DIMENSIONS: tuple[str, ...] = (
    "this_month",
    "last_month",
    "this_week",
    "last_week",
    "this_quarter",
    "last_quarter",
    "last_3_months",
    "last_6_months",
)
# 'all' is the whole site; 'hall' is hallA + hallB + hallC.
AREAS: tuple[str, ...] = ("all", "hall", "hallA", "hallB", "hallC", "vip", "snooker", "mahjong", "ktv")
HALL_AREAS: tuple[str, ...] = ("hallA", "hallB", "hallC")

APP2_SITE_APP = "app2_finance"  # area 'all'
APP2_AREA_APP = "app2a_finance_area"  # the other eight areas

app2_partitions = dg.MultiPartitionsDefinition(
    {
        "time_dimension": dg.StaticPartitionsDefinition(list(TIME_DIMENSIONS)),
        "area": dg.StaticPartitionsDefinition(list(AREAS)),
    }
)
members_partitions = dg.DynamicPartitionsDefinition(name="members")
assistant_members_partitions = dg.DynamicPartitionsDefinition(name="assistant_members")

# Dagster's tags for a partition range run. A multi-partition range is the rectangle between the
# two keys on each dimension, so first..last key is all 72 in one run.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


# ------------------------------------------------------------------------------------- app2


@dataclass(frozen=True)
class App2Key:
    time_dimension: str
    area: str

    @property
    def app_name(self) -> str:
        return app2_app_name(self.area)

    @property
    def target_id(self) -> str:
        return app2_target_id(self.time_dimension, self.area)

    @property
    def partition_key(self) -> dg.MultiPartitionKey:
        return app2_partition_key(self.time_dimension, self.area)


def app2_app_name(area: str) -> str:
    if area not in AREAS:
        raise ValueError(f"unknown area {area!r}; known: {', '.join(AREAS)}")
    return APP2_SITE_APP if area == "all" else APP2_AREA_APP


def app2_target_id(time_dimension: str, area: str) -> str:
    """Cache target id, as the clients read it: ``this_month__all``, ``last_week__hallA``."""
    return f"{time_dimension}__{area}"


def app2_partition_key(time_dimension: str, area: str) -> dg.MultiPartitionKey:
    if time_dimension not in TIME_DIMENSIONS:
        raise ValueError(f"unknown time dimension {time_dimension!r}; known: {', '.join(TIME_DIMENSIONS)}")
    app2_app_name(area)
    return dg.MultiPartitionKey({"time_dimension": time_dimension, "area": area})


def parse_app2_key(key: str | dg.MultiPartitionKey) -> App2Key:
    if not isinstance(key, dg.MultiPartitionKey):
        key = app2_partitions.get_partition_key_from_str(key)
    dims = key.keys_by_dimension
    parsed = App2Key(dims["time_dimension"], dims["area"])
    app2_partition_key(parsed.time_dimension, parsed.area)  # validates both values
    return parsed


def all_app2_keys() -> list[App2Key]:
    return [App2Key(td, area) for td in TIME_DIMENSIONS for area in AREAS]


def app2_full_range_tags() -> dict[str, str]:
    """Run tags that make one run of all 72 app2 partitions (first key .. last key)."""
    keys = app2_partitions.get_partition_keys()
    return {RANGE_START_TAG: str(keys[0]), RANGE_END_TAG: str(keys[-1])}


# ----------------------------------------------------------------------------- member keys

_MEMBER_KEY = re.compile(r"^(\d+)-(\d+)$")
_ASSISTANT_MEMBER_KEY = re.compile(r"^(\d+)-(\d+)_(\d+)$")


@dataclass(frozen=True)
class MemberKey:
    site_id: int
    member_id: int

    @property
    def partition_key(self) -> str:
        return member_partition_key(self.site_id, self.member_id)

    @property
    def target_id(self) -> str:
        return str(self.member_id)


@dataclass(frozen=True)
class AssistantMemberKey:
    site_id: int
    assistant_id: int
    member_id: int

    @property
    def partition_key(self) -> str:
        return assistant_member_partition_key(self.site_id, self.assistant_id, self.member_id)

    @property
    def target_id(self) -> str:
        return f"{self.assistant_id}_{self.member_id}"

    @property
    def member(self) -> MemberKey:
        return MemberKey(self.site_id, self.member_id)


def _non_negative(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def member_partition_key(site_id: int, member_id: int) -> str:
    return f"{_non_negative('site_id', site_id)}-{_non_negative('member_id', member_id)}"


def parse_member_key(key: str) -> MemberKey:
    match = _MEMBER_KEY.match(key)
    if not match:
        raise ValueError(f"not a members partition key (expected '<site_id>-<member_id>'): {key!r}")
    return MemberKey(int(match.group(1)), int(match.group(2)))


def assistant_member_partition_key(site_id: int, assistant_id: int, member_id: int) -> str:
    return (
        f"{_non_negative('site_id', site_id)}-{_non_negative('assistant_id', assistant_id)}"
        f"_{_non_negative('member_id', member_id)}"
    )


def parse_assistant_member_key(key: str) -> AssistantMemberKey:
    match = _ASSISTANT_MEMBER_KEY.match(key)
    if not match:
        raise ValueError(
            f"not an assistant_members partition key (expected '<site_id>-<assistant_id>_<member_id>'): {key!r}"
        )
    return AssistantMemberKey(int(match.group(1)), int(match.group(2)), int(match.group(3)))
