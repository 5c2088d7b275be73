"""The shipped dagster.yaml gives an instance whose storage is our Postgres server, pooled."""

import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage
from sqlalchemy.pool import QueuePool

from zqyy_assets.core import db

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_dagster_yaml_uses_postgres_storage(
    pg_server_url: str, scratch_database: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage_db = scratch_database("zqyy_t_dagster")
    db.ensure_database(pg_server_url, storage_db)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", db.dagster_storage_url(pg_server_url, storage_db))
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
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


def test_production_yaml_is_valid_for_dagster_with_the_kubernetes_launcher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """deploy/dagster.production.yaml as Dagster reads it: the whole file against the instance's
    schema, then its run launcher and coordinator built by Dagster from their config (the
    `k8s` extra installs dagster-k8s). Only the Kubernetes client's config load is skipped: no
    cluster here."""
    import dagster_k8s.launcher
    from dagster._core.instance.config import ConcurrencyConfig
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher

    shutil.copyfile(REPO_ROOT / "deploy" / "dagster.production.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setattr(dagster_k8s.launcher, "load_kubernetes_config", lambda **_: None)
    monkeypatch.setenv("DAGSTER_K8S_NAMESPACE", "zqyy")
    monkeypatch.setenv("DAGSTER_K8S_JOB_IMAGE", "registry.example/zqyy-assets:1.0")

    ref = InstanceRef.from_dir(str(tmp_path))  # the whole file against Dagster's instance schema
    launcher = ref.run_launcher
    assert isinstance(launcher, K8sRunLauncher)
    assert (launcher.job_namespace, launcher.job_image) == ("zqyy", "registry.example/zqyy-assets:1.0")
    assert launcher.instance_config_map == "dagster-instance"
    assert "zqyy-secrets" in launcher.env_secrets
    assert {"VENUE_TIMEZONE", "BUSINESS_DAY_CUTOFF_HOURS"} <= set(launcher.env_vars)
    coordinator = ref.run_coordinator
    assert isinstance(coordinator, QueuedRunCoordinator)
    # what the instance makes of the `concurrency` section with this coordinator
    config = ConcurrencyConfig.from_concurrency_settings(
        ref.settings["concurrency"], coordinator.get_run_queue_config()
    )
    assert config.run_queue_config is not None and config.run_queue_config.max_concurrent_runs == 20
    assert config.pool_config.default_pool_limit == 12
