"""The Dagster tag names in ``core/tags.py`` are spelled out so the core and the API need no
Dagster import; this holds them to Dagster's own constants, so a release that renames one
fails here instead of silently breaking range runs, run keys or retries."""

from __future__ import annotations

import pytest
from dagster._core.storage import tags as dagster_tags

from zqyy_assets.core import tags


@pytest.mark.parametrize(
    ("ours", "dagsters"),
    [
        ("PARTITION_TAG", "PARTITION_NAME_TAG"),
        ("RANGE_START_TAG", "ASSET_PARTITION_RANGE_START_TAG"),
        ("RANGE_END_TAG", "ASSET_PARTITION_RANGE_END_TAG"),
        ("RUN_KEY_TAG", "RUN_KEY_TAG"),
        ("SENSOR_NAME_TAG", "SENSOR_NAME_TAG"),
        ("WILL_RETRY_TAG", "WILL_RETRY_TAG"),
        ("MAX_RUNTIME_TAG", "MAX_RUNTIME_SECONDS_TAG"),
    ],
)
def test_dagster_tag_names_match_dagsters_own(ours: str, dagsters: str) -> None:
    assert getattr(tags, ours) == getattr(dagster_tags, dagsters)


def test_every_dagster_tag_we_name_is_checked() -> None:
    ours = {name for name, value in vars(tags).items() if isinstance(value, str) and value.startswith("dagster/")}
    assert ours == {
        "PARTITION_TAG",
        "RANGE_START_TAG",
        "RANGE_END_TAG",
        "RUN_KEY_TAG",
        "SENSOR_NAME_TAG",
        "WILL_RETRY_TAG",
        "MAX_RUNTIME_TAG",
    }


@pytest.mark.parametrize("value", ["1", "true", "TRUE", " yes "])
def test_is_true_accepts_the_usual_spellings(value: str) -> None:
    assert tags.is_true(value)


@pytest.mark.parametrize("value", [None, "", "0", "false", "no", "on"])
def test_is_true_rejects_everything_else(value: str | None) -> None:
    assert not tags.is_true(value)
