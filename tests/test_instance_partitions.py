"""Deleting many dynamic partition keys in one statement (zqyy_assets/instance/partitions.py), on
the shipped Postgres storage and on Dagster's default SQLite one: exactly the keys asked, of the
definition asked, and nothing else."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from tests.databases import shipped_dagster_instance
from zqyy_assets.instance.partitions import delete_dynamic_partitions


@pytest.mark.parametrize("storage", ["postgres", "sqlite"])
def test_deletes_exactly_the_keys_asked_in_one_call(
    storage: str,
    pg_server_url: str,
    scratch_database: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened = (
        shipped_dagster_instance(pg_server_url, scratch_database("zqyy_t_parts"), tmp_path, monkeypatch)
        if storage == "postgres"
        else dg.instance_for_test()
    )
    with opened as instance:
        keys = [f"1-{m}" for m in range(1, 1001)]
        instance.add_dynamic_partitions("members", keys)
        instance.add_dynamic_partitions("assistant_members", ["1-7_2", "1-7_3"])
        # The same key under another definition stays; a key that does not exist is no error.
        instance.add_dynamic_partitions("assistant_members", ["1-2"])

        delete_dynamic_partitions(instance, "members", [*keys[1::2], "1-999999"])
        delete_dynamic_partitions(instance, "members", [])

        assert instance.get_dynamic_partitions("members") == keys[0::2]
        assert instance.get_dynamic_partitions("assistant_members") == ["1-7_2", "1-7_3", "1-2"]
        # Deleted keys can be added back, as the inbox sensor does for a retired member's next event.
        instance.add_dynamic_partitions("members", ["1-2"])
        assert instance.has_dynamic_partition("members", "1-2")
