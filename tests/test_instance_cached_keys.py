"""The shipped storage remembers dynamic partition keys between reads (zqyy_assets/instance/
cached_keys.py) and still answers every read exactly as Dagster's own storage would: through
appends, retirements, a retired key added back, and rows committed late with a lower id."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster_postgres import PostgresEventLogStorage
from sqlalchemy import text

from tests.databases import shipped_dagster_instance
from zqyy_assets.core import db
from zqyy_assets.defs.ai.partitions import members_partitions
from zqyy_assets.instance.cached_keys import KeyCachingPostgresEventLogStorage
from zqyy_assets.instance.partitions import delete_dynamic_partitions
from zqyy_assets.testing.daemon_harness import write_dagster_home

MEMBERS = "members"


@pytest.fixture
def instances(
    pg_server_url: str, scratch_database: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[dg.DagsterInstance, dg.DagsterInstance]]:
    """The reading instance and another on the same storage, standing for the other processes."""
    storage_db = scratch_database("zqyy_t_keys")
    with (
        shipped_dagster_instance(pg_server_url, storage_db, tmp_path, monkeypatch) as reader,
        dg.DagsterInstance.from_config(str(tmp_path)) as writer,
    ):
        yield reader, writer


def _storage(instance: dg.DagsterInstance) -> KeyCachingPostgresEventLogStorage:
    storage = instance.event_log_storage
    assert isinstance(storage, KeyCachingPostgresEventLogStorage), type(storage)
    return storage


def _as_dagster_reads(instance: dg.DagsterInstance) -> list[str]:
    """Every key, read as dagster-postgres reads them (no cache)."""
    return list(PostgresEventLogStorage.get_dynamic_partitions(_storage(instance), MEMBERS))


def _ids(instance: dg.DagsterInstance) -> dict[str, int]:
    with _storage(instance).index_connection() as conn:
        rows = conn.execute(
            text("SELECT partition, id FROM dynamic_partitions WHERE partitions_def_name = :n"), {"n": MEMBERS}
        )
        return {row[0]: row[1] for row in rows}


def _take_id(instance: dg.DagsterInstance) -> int:
    """An id from the table's sequence, as an insert still to commit holds it."""
    with _storage(instance).index_connection() as conn:
        return conn.execute(text("SELECT nextval(pg_get_serial_sequence('dynamic_partitions', 'id'))")).scalar_one()


def _commit_late(instance: dg.DagsterInstance, key: str, row_id: int) -> None:
    """The insert holding ``row_id`` commits now, after rows with higher ids were read."""
    with _storage(instance).index_connection() as conn:
        conn.execute(
            text(
                "INSERT INTO dynamic_partitions (partitions_def_name, partition, create_timestamp, id)"
                " VALUES (:n, :k, now(), :id)"
            ),
            {"n": MEMBERS, "k": key, "id": row_id},
        )


def test_reads_only_what_changed_and_sees_every_change(instances) -> None:
    reader, writer = instances
    reads = _storage(reader).key_reads

    writer.add_dynamic_partitions(MEMBERS, ["1-1", "1-2", "1-3"])
    assert reader.get_dynamic_partitions(MEMBERS) == ["1-1", "1-2", "1-3"]
    assert reader.get_dynamic_partitions(MEMBERS) == ["1-1", "1-2", "1-3"]
    writer.add_dynamic_partitions(MEMBERS, ["1-4", "1-5"])
    assert reader.get_dynamic_partitions(MEMBERS) == ["1-1", "1-2", "1-3", "1-4", "1-5"]
    assert (reads.whole, reads.unchanged, reads.appended) == (1, 1, 1)

    # Retired, then back with its member's next event: once, at the end, as Dagster orders it;
    # a range over the new keys spans exactly them.
    delete_dynamic_partitions(writer, MEMBERS, ["1-2"])
    assert reader.get_dynamic_partitions(MEMBERS) == ["1-1", "1-3", "1-4", "1-5"]
    writer.add_dynamic_partitions(MEMBERS, ["1-2", "1-6"])
    assert reader.get_dynamic_partitions(MEMBERS) == ["1-1", "1-3", "1-4", "1-5", "1-2", "1-6"]
    with dg.partition_loading_context(dynamic_partitions_store=reader):
        assert members_partitions.get_partition_keys_in_range(dg.PartitionKeyRange("1-2", "1-6")) == ["1-2", "1-6"]
    assert (reads.whole, reads.appended) == (2, 2)

    # A row whose id was taken before the highest one read, committed after: not an append, so
    # every key is read again.
    late = _take_id(writer)
    writer.add_dynamic_partitions(MEMBERS, ["1-7"])
    assert reader.get_dynamic_partitions(MEMBERS)[-1] == "1-7"
    _commit_late(writer, "1-8", late)
    assert reader.get_dynamic_partitions(MEMBERS)[-2:] == ["1-8", "1-7"] == _as_dagster_reads(reader)[-2:]
    assert (reads.whole, reads.appended) == (3, 3)
    # A deletion and a late row together leave the count and the highest id as they were: the
    # sum of the ids still tells.
    late = _take_id(writer)
    writer.add_dynamic_partitions(MEMBERS, ["1-9"])
    assert reader.get_dynamic_partitions(MEMBERS)[-1] == "1-9"
    delete_dynamic_partitions(writer, MEMBERS, ["1-4"])
    _commit_late(writer, "1-10", late)
    assert reader.get_dynamic_partitions(MEMBERS) == _as_dagster_reads(reader)
    assert "1-4" not in reader.get_dynamic_partitions(MEMBERS)
    assert reads.whole == 4


def test_a_random_history_reads_as_dagster_reads_it(instances) -> None:
    reader, writer = instances
    rnd = random.Random(7)
    made = 0
    taken: list[int] = []  # ids of inserts still to commit
    for _ in range(150):
        existing = list(_ids(writer))
        choice = rnd.random()
        if choice < 0.45 or not existing:
            keys = [f"1-{made + i}" for i in range(rnd.randint(1, 5))]
            made += len(keys)
            writer.add_dynamic_partitions(MEMBERS, keys)
        elif choice < 0.7:
            delete_dynamic_partitions(writer, MEMBERS, rnd.sample(existing, rnd.randint(1, min(3, len(existing)))))
        elif choice < 0.85:
            taken.append(_take_id(writer))
        elif taken:
            _commit_late(writer, f"1-{made}", taken.pop(rnd.randrange(len(taken))))
            made += 1
        assert reader.get_dynamic_partitions(MEMBERS) == _as_dagster_reads(reader)
    reads = _storage(reader).key_reads
    assert reads.appended > 0 and reads.unchanged > 0 and reads.whole > 1, reads  # every path taken


def test_the_cache_can_be_turned_off(
    pg_server_url: str, scratch_database: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``remember_partition_keys: false`` in dagster.yaml: dagster-postgres's own event log storage."""
    storage_db = scratch_database("zqyy_t_keys_off")
    db.ensure_database(pg_server_url, storage_db)
    home = write_dagster_home(tmp_path / "home", storage_config={"remember_partition_keys": False})
    monkeypatch.setenv("DAGSTER_PG_URL", db.dagster_storage_url(pg_server_url, storage_db))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage) is PostgresEventLogStorage
        instance.add_dynamic_partitions(MEMBERS, ["1-1", "1-2"])
        assert instance.get_dynamic_partitions(MEMBERS) == ["1-1", "1-2"]
