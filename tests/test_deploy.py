"""deploy/dagster.production.yaml as Dagster itself reads it: storage on a real Postgres server,
the queued coordinator, and the Kubernetes run launcher built from its config (the ``k8s``
extra is installed by ``make test``). No cluster here: the launcher is pointed at a kubeconfig
naming an unreachable API server, which building it never contacts."""

from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import pytest
import yaml
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster_k8s import K8sRunLauncher

from zqyy_assets.core import db

REPO_ROOT = Path(__file__).resolve().parents[1]

KUBECONFIG = """
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: ci, user: {token: not-a-secret}}]
contexts: [{name: ci, context: {cluster: none, user: ci}}]
current-context: ci
"""


def _production_instance_home(tmp_path: Path, socket_dir: str | None) -> Path:
    """The production file as shipped, except what only this machine needs: the kubeconfig
    instead of the in-cluster service account, and the embedded server's socket directory."""
    config = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.production.yaml").read_text(encoding="utf-8"))
    if socket_dir:
        config["storage"]["custom"]["config"]["postgres_db"]["params"] = {"host": socket_dir}
    (tmp_path / "kubeconfig").write_text(KUBECONFIG, encoding="utf-8")
    config["run_launcher"]["config"].update(load_incluster_config=False, kubeconfig_file=str(tmp_path / "kubeconfig"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return home


def test_production_instance_loads_with_the_kubernetes_launcher(
    pg_server_url: str, scratch_database: Callable[[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage_db = scratch_database("zqyy_t_prod")
    db.ensure_database(pg_server_url, storage_db)
    server = urlsplit(pg_server_url)
    socket_dir = parse_qs(server.query).get("host", [None])[0]
    for name, value in {
        "DAGSTER_PG_HOST": server.hostname or "localhost",
        "DAGSTER_PG_PORT": str(server.port or 5432),
        "DAGSTER_PG_DB": storage_db,
        "DAGSTER_PG_USER": server.username,
        "DAGSTER_PG_PASSWORD": server.password or "",
        "DAGSTER_K8S_NAMESPACE": "zqyy-runs",
        "ZQYY_IMAGE": "registry.example.com/zqyy-assets:1.0.0",
    }.items():
        monkeypatch.setenv(name, value or "")

    with dg.DagsterInstance.from_config(str(_production_instance_home(tmp_path, socket_dir))) as instance:
        coordinator = instance.run_coordinator
        assert isinstance(coordinator, QueuedRunCoordinator)
        concurrency = instance.get_concurrency_config()  # what the daemon dequeues by
        assert concurrency.run_queue_config is not None
        assert concurrency.run_queue_config.max_concurrent_runs == 20
        assert [limit["key"] for limit in concurrency.run_queue_config.tag_concurrency_limits] == ["zqyy/trigger"]
        assert concurrency.pool_config.default_pool_limit == 12

        launcher = instance.run_launcher  # built by Dagster from the file: its config is validated here
        assert isinstance(launcher, K8sRunLauncher)
        assert launcher.job_namespace == "zqyy-runs"
        assert launcher.job_image == "registry.example.com/zqyy-assets:1.0.0"
        assert launcher.instance_config_map == "zqyy-dagster-instance"
        assert "VENUE_TIMEZONE" in launcher.env_vars and "zqyy-secrets" in launcher.env_secrets

        # The storage is the real server's: a run (in process, not launched) is recorded there.
        @dg.asset
        def probe() -> None:
            return None

        result = dg.materialize([probe], instance=instance)
        assert instance.get_run_by_id(result.run_id) is not None


def test_the_launcher_refuses_a_config_missing_what_it_needs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: without ``instance_config_map`` Dagster refuses the launcher."""
    from dagster._config import process_config

    config = yaml.safe_load((REPO_ROOT / "deploy" / "dagster.production.yaml").read_text(encoding="utf-8"))
    launcher_config = {**config["run_launcher"]["config"]}
    monkeypatch.setenv("DAGSTER_K8S_NAMESPACE", "zqyy-runs")
    monkeypatch.setenv("ZQYY_IMAGE", "img")
    assert process_config(K8sRunLauncher.config_type(), launcher_config).success
    del launcher_config["instance_config_map"]
    result = process_config(K8sRunLauncher.config_type(), launcher_config)
    assert not result.success
    assert "instance_config_map" in str(result.errors)
