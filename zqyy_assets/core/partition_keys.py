"""Partition keys of the AI assets: their formats, parsing and the cache target each names.

- ``app2_finance``: ``time_dimension`` x ``area`` (8 x 9 = 72); Dagster writes a
  multi-partition key as its dimension values joined by ``|`` in dimension-name order
  (``area|time_dimension``: ``all|this_month``). Each partition answers for every active site.
- member apps: dynamic partitions ``members``, key ``"{site_id}-{member_id}"``.
- assistant x member apps: dynamic partitions ``assistant_members``, key
  ``"{site_id}-{assistant_id}_{member_id}"``; the part after the site is the cache ``target_id``.

Sites are part of the member keys (member ids are per site), not of the app2 keys: the 72 app2
partitions are the same for every site and one run answers them all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from zqyy_assets.core.apps import APP2_AREA_APP, APP2_SITE_APP
from zqyy_assets.core.tags import RANGE_END_TAG, RANGE_START_TAG
from zqyy_assets.core.vocabulary import AREAS, TIME_DIMENSIONS, WHOLE_SITE

_MULTI_KEY_SEPARATOR = "|"

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
    def partition_key(self) -> str:
        return app2_partition_key(self.time_dimension, self.area)

    @property
    def dimensions(self) -> dict[str, str]:
        return {"time_dimension": self.time_dimension, "area": self.area}


def app2_app_name(area: str) -> str:
    """Area 'all' is answered by the whole-site app, every other area by the area app."""
    if area not in AREAS:
        raise ValueError(f"unknown area {area!r}; known: {', '.join(AREAS)}")
    return APP2_SITE_APP if area == WHOLE_SITE else APP2_AREA_APP


def app2_target_id(time_dimension: str, area: str) -> str:
    """Cache target id, as the clients read it: ``this_month__all``, ``last_week__hallA``."""
    return f"{time_dimension}__{area}"


def app2_partition_key(time_dimension: str, area: str) -> str:
    """The app2 partition key as Dagster writes it (``all|this_month``); both values validated."""
    if time_dimension not in TIME_DIMENSIONS:
        raise ValueError(f"unknown time dimension {time_dimension!r}; known: {', '.join(TIME_DIMENSIONS)}")
    app2_app_name(area)
    return _MULTI_KEY_SEPARATOR.join((area, time_dimension))


def parse_app2_key(key: str) -> App2Key:
    parts = str(key).split(_MULTI_KEY_SEPARATOR)
    if len(parts) != 2:
        raise ValueError(f"not an app2 partition key (expected '<area>|<time_dimension>'): {key!r}")
    area, time_dimension = parts
    app2_partition_key(time_dimension, area)  # validates both values
    return App2Key(time_dimension, area)


def all_app2_keys() -> list[App2Key]:
    return [App2Key(td, area) for td in TIME_DIMENSIONS for area in AREAS]


def app2_key_range() -> tuple[str, str]:
    """The first and last app2 keys in Dagster's order: the range of one run over all 72."""
    # Dagster orders a multi-partition's keys dimension by dimension (names sorted), each in its
    # declared order: the first key is the first area with the first time dimension.
    return app2_partition_key(TIME_DIMENSIONS[0], AREAS[0]), app2_partition_key(TIME_DIMENSIONS[-1], AREAS[-1])


def app2_full_range_tags() -> dict[str, str]:
    """Run tags that make one run of all 72 app2 partitions (first key .. last key): a
    multi-partition range is the rectangle between the two keys on each dimension."""
    first, last = app2_key_range()
    return {RANGE_START_TAG: first, RANGE_END_TAG: last}


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


# ------------------------------------------------------------------------- from an answer


def partition_key_of(site_id: int, target_id: str | None) -> str | None:
    """The partition an answer's (site, cache target) belongs to, from the target's format:
    ``this_month__all`` -> ``all|this_month``; ``42`` -> ``7-42``; ``3_42`` -> ``7-3_42``; None
    for a target of no partition (the chat's)."""
    if not target_id:
        return None
    time_dimension, sep, area = target_id.partition("__")
    if sep:
        try:
            return app2_partition_key(time_dimension, area)
        except ValueError:
            return None
    if re.fullmatch(r"\d+(_\d+)?", target_id):
        return f"{site_id}-{target_id}"
    return None
