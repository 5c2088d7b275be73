"""A schedule's cron: the API's check agrees with Dagster's, and the code location loads the
admin's saved cron over the default (or the default, with a warning, when it cannot)."""

import logging

import pytest
from dagster._utils.schedules import is_valid_cron_string

from zqyy_assets.core import db
from zqyy_assets.core.schedules import PREWARM_SCHEDULE_NAME, SAVE_SQL, check_cron, load_cron

CRONS = [
    "0 10 * * *",
    "30 9 * * 1-5",
    "*/15 * * * *",
    "0 10 L * *",
    "0 10 * * MON-FRI",
    "0 10 * JAN-MAR *",
    "0 10 * * 5#2",
    "0 10 1,15 * *",
    "0-5/2 10 * * 7",
    "61 * * * *",
    "0 24 * * *",
    "0 10 0 * *",
    "0 10 * 13 *",
    "0 10 * * 8",
    "0 10 30 2 *",
    "0 10 31 2 *",
    "x 10 * * *",
    "H 10 * * *",
    "0 10 * * * *",
    "0 10 * *",
    "10:00",
    "",
]


@pytest.mark.parametrize("cron", CRONS)
def test_a_cron_the_api_accepts_is_one_dagster_accepts(cron: str) -> None:
    try:
        normal = check_cron(cron)
    except ValueError:
        return  # refusing more than Dagster is allowed (six fields, macros, never-firing dates)
    assert is_valid_cron_string(normal), normal


@pytest.mark.parametrize("cron", [c for c in CRONS if c.split() and len(c.split()) == 5 and is_valid_cron_string(c)])
def test_every_five_field_cron_dagster_accepts_and_that_fires_is_accepted(cron: str) -> None:
    assert check_cron(cron) == cron


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 10 * *", "five fields"),
        ("0 0 * * * *", "five fields"),
        ("@daily", "five fields"),
        ("61 * * * *", "not a valid cron"),
        ("0 10 30 2 *", "February"),
        # Dagster's own check accepts it, and then fails computing the next tick.
        ("0 10 31 4 *", "never fires"),
    ],
)
def test_a_bad_cron_says_why(cron: str, message: str) -> None:
    assert is_valid_cron_string(cron) is (cron in ("0 10 31 4 *", "@daily"))
    with pytest.raises(ValueError, match=message):
        check_cron(cron)


def test_a_cron_is_kept_with_single_spaces() -> None:
    assert check_cron("  0   9 * *  1-5 ") == "0 9 * * 1-5"


def test_the_saved_cron_wins_over_the_default(db_url: str) -> None:
    assert load_cron(db_url, PREWARM_SCHEDULE_NAME, "0 10 * * *", "APP2_PREWARM_CRON").cron == "0 10 * * *"
    with db.transaction(db_url) as conn:
        conn.execute(SAVE_SQL, (PREWARM_SCHEDULE_NAME, "30 9 * * *", "店长"))
    loaded = load_cron(db_url, PREWARM_SCHEDULE_NAME, "0 10 * * *", "APP2_PREWARM_CRON")
    assert loaded.cron == "30 9 * * *" and loaded.source.startswith("set by 店长 at ")
    # Another schedule has no saved cron.
    assert load_cron(db_url, "other_schedule", "0 1 * * *", "X").cron == "0 1 * * *"


def test_the_location_loads_with_the_default_when_the_saved_cron_cannot_be_used(db_url: str, caplog) -> None:
    with db.transaction(db_url) as conn:
        conn.execute(SAVE_SQL, (PREWARM_SCHEDULE_NAME, "0 10 31 4 *", "someone"))
    with caplog.at_level(logging.WARNING):
        broken = load_cron(db_url, PREWARM_SCHEDULE_NAME, "0 10 * * *", "APP2_PREWARM_CRON")
    assert broken.cron == "0 10 * * *" and "not valid" in broken.source and "not valid" in caplog.text
    unreachable = load_cron("postgresql://nobody@127.0.0.1:9/zqyy", PREWARM_SCHEDULE_NAME, "0 10 * * *", "CRON")
    assert unreachable.cron == "0 10 * * *" and "could not be read" in unreachable.source
    assert load_cron(None, PREWARM_SCHEDULE_NAME, "0 10 * * *", "CRON").source.startswith("CRON (no DATABASE_URL")
