"""The settings models read the environment when built, validate it, and fill defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from zqyy_assets.core.settings import (
    DatabaseSettings,
    MemberPartitionSettings,
    PrewarmScheduleSettings,
    VenueSettings,
)

VARIABLES = (
    "DATABASE_URL",
    "ZQYY_PGDATA_ROOT",
    "VENUE_TIMEZONE",
    "BUSINESS_DAY_CUTOFF_HOURS",
    "APP2_PREWARM_CRON",
    "APP2_PREWARM_TIMEZONE",
    "MEMBER_PARTITION_RETENTION_DAYS",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    assert DatabaseSettings().database_url is None
    assert (VenueSettings().venue_timezone, VenueSettings().business_day_cutoff_hours) == ("Asia/Shanghai", 6)
    prewarm = PrewarmScheduleSettings()
    assert (prewarm.app2_prewarm_cron, prewarm.timezone(VenueSettings())) == ("0 10 * * *", "Asia/Shanghai")
    assert MemberPartitionSettings().member_partition_retention_days == 90


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in {
        "DATABASE_URL": "postgresql://u@h/zqyy",
        "ZQYY_PGDATA_ROOT": str(tmp_path),
        "VENUE_TIMEZONE": "Asia/Kuala_Lumpur",
        "BUSINESS_DAY_CUTOFF_HOURS": "4",
        "APP2_PREWARM_CRON": "30 9 * * *",
    }.items():
        monkeypatch.setenv(name, value)
    database, venue, prewarm = DatabaseSettings(), VenueSettings(), PrewarmScheduleSettings()
    assert (database.database_url, database.zqyy_pgdata_root) == ("postgresql://u@h/zqyy", tmp_path)
    assert (venue.venue_timezone, venue.business_day_cutoff_hours) == ("Asia/Kuala_Lumpur", 4)
    # the prewarm follows the venue's zone unless it has its own
    assert (prewarm.app2_prewarm_cron, prewarm.timezone(venue)) == ("30 9 * * *", "Asia/Kuala_Lumpur")
    monkeypatch.setenv("APP2_PREWARM_TIMEZONE", "Asia/Hong_Kong")
    assert PrewarmScheduleSettings().timezone(venue) == "Asia/Hong_Kong"


def test_blank_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "  ")
    monkeypatch.setenv("APP2_PREWARM_TIMEZONE", "")
    assert DatabaseSettings().database_url is None
    assert PrewarmScheduleSettings().timezone(VenueSettings()) == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("name", "value", "model"),
    [
        ("VENUE_TIMEZONE", "Mars/Olympus_Mons", VenueSettings),
        ("APP2_PREWARM_TIMEZONE", "Mars/Olympus_Mons", PrewarmScheduleSettings),
        ("BUSINESS_DAY_CUTOFF_HOURS", "24", VenueSettings),
        ("APP2_PREWARM_CRON", "0 25 * * *", PrewarmScheduleSettings),
        ("APP2_PREWARM_SHARD_SIZE", "0", PrewarmScheduleSettings),
        ("APP2_PREWARM_SHARD_SIZE", "-5", PrewarmScheduleSettings),
        ("MEMBER_PARTITION_RETENTION_DAYS", "0", MemberPartitionSettings),
        ("MEMBER_PARTITION_RETENTION_DAYS", "-3", MemberPartitionSettings),
    ],
)
def test_bad_values_fail_naming_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str, model) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower() if name.startswith("BUSINESS") else name):
        model()
