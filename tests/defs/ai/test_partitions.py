import dagster as dg
import pytest

from zqyy_assets.core.partition_keys import (
    AssistantMemberKey,
    MemberKey,
    all_app2_keys,
    app2_full_range_tags,
    app2_partition_key,
    assistant_member_partition_key,
    member_partition_key,
    parse_app2_key,
    parse_assistant_member_key,
    parse_member_key,
)
from zqyy_assets.core.vocabulary import AREAS, TIME_DIMENSIONS
from zqyy_assets.defs.ai.partitions import app2_partitions


def test_member_keys_round_trip() -> None:
    assert member_partition_key(3, 1042) == "3-1042"
    assert parse_member_key("3-1042") == MemberKey(3, 1042)
    assert parse_member_key("3-1042").target_id == "1042"
    key = assistant_member_partition_key(3, 7, 1042)
    assert key == "3-7_1042"
    parsed = parse_assistant_member_key(key)
    assert parsed == AssistantMemberKey(3, 7, 1042)
    assert (parsed.target_id, parsed.partition_key, parsed.member) == ("7_1042", key, MemberKey(3, 1042))


@pytest.mark.parametrize("bad", ["", "3", "3-", "-1", "3-x", "3_1042", "3-7_1042", " 3-1", "3-1-2"])
def test_malformed_member_keys_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_member_key(bad)


@pytest.mark.parametrize("bad", ["3-1042", "3-7-1042", "3_7_1042", "a-7_1", "3-7_"])
def test_malformed_assistant_member_keys_are_rejected(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_assistant_member_key(bad)


def test_negative_ids_cannot_be_encoded() -> None:
    with pytest.raises(ValueError):
        member_partition_key(-1, 5)
    with pytest.raises(ValueError):
        assistant_member_partition_key(1, 2, True)


def test_app2_keys_name_their_app_and_target() -> None:
    keys = all_app2_keys()
    assert len(keys) == 72 == len(TIME_DIMENSIONS) * len(AREAS)
    site_wide = [k for k in keys if k.app_name == "app2_finance"]
    assert {k.area for k in site_wide} == {"all"} and len(site_wide) == 8
    assert sum(k.app_name == "app2a_finance_area" for k in keys) == 64
    key = parse_app2_key("hallA|last_week")  # Dagster orders dimensions by name: area first
    assert (key.time_dimension, key.area, key.target_id) == ("last_week", "hallA", "last_week__hallA")
    assert str(app2_partition_key("last_week", "hallA")) == "hallA|last_week"
    with pytest.raises(ValueError):
        app2_partition_key("yesterday", "all")
    with pytest.raises(ValueError):
        app2_partition_key("this_week", "lobby")


def test_full_range_tags_cover_all_72_partitions() -> None:
    tags = app2_full_range_tags()
    keys = app2_partitions.get_partition_keys_in_range(
        dg.PartitionKeyRange(tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"])
    )
    assert len(keys) == 72 and {str(k) for k in keys} == {str(k.partition_key) for k in all_app2_keys()}
