"""The shipped dagster.yaml gives an instance whose storage is our Postgres server, pooled."""

from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage
from sqlalchemy.pool import QueuePool

from tests.databases import shipped_dagster_instance

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_dagster_yaml_uses_postgres_storage(
    pg_server_url: str, scratch_database: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage_db = scratch_database("zqyy_t_dagster")
    with shipped_dagster_instance(pg_server_url, storage_db, tmp_path, monkeypatch) as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        storages = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
        # Pooled: a run's ~25 event writes reuse connections instead of opening one each. This
        # reads the private attribute storage.py replaces: a release that renames it fails here.
        for storage in storages:
            assert isinstance(storage._engine.pool, QueuePool), type(storage._engine.pool)

        @dg.asset
        def probe() -> None:
            return None

        # A real run writes events through the psycopg2 URL (the NOTIFY path that fails with psycopg 3).
        assert dg.materialize([probe], instance=instance).success
        assert instance.get_latest_materialization_event(dg.AssetKey("probe")) is not None
        # ...and its connections came from the pool (idle in it now), not from an engine of its own.
        for storage in (instance.run_storage, instance.event_log_storage):
            assert storage._engine.pool.checkedin() >= 1, type(storage).__name__

        # The inbox sensor asks which of its window's keys exist: one query bounded by the keys
        # asked (the storage's unique index), not a load of every key.
        assert instance.event_log_storage.has_bounded_dynamic_partition_membership_query
        instance.add_dynamic_partitions("members", ["1-100", "1-101"])
        assert instance.get_existing_dynamic_partitions("members", ["1-101", "1-102"]) == {"1-101"}


def test_production_yaml_storage_config_is_valid() -> None:
    """deploy/dagster.production.yaml names the same pooled storage, with postgres_db fields."""
    import yaml
    from dagster._config import validate_config

    from zqyy_assets.instance.storage import PooledPostgresStorage

    storage = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.production.yaml").read_text(encoding="utf-8"))["storage"]
    assert (storage["custom"]["module"], storage["custom"]["class"]) == (
        "zqyy_assets.instance.storage",
        "PooledPostgresStorage",
    )
    result = validate_config(PooledPostgresStorage.config_type(), storage["custom"]["config"])
    assert result.success, result.errors
