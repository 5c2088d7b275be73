from collections.abc import Callable

from zqyy_assets.core import db
from zqyy_assets.core.migrations import (
    apply_migrations,
    migration_files,
    prepare_databases,
)


def test_migrations_apply_twice_cleanly(pg_server_url: str, scratch_database: Callable[[str], str]) -> None:
    url = db.with_database(pg_server_url, scratch_database("zqyy_t_migrate"))
    assert db.ensure_database(pg_server_url, db.database_name(url))

    first = apply_migrations(url)
    second = apply_migrations(url)

    assert first == [p.stem for p in migration_files()]
    assert second == []
    with db.connect(url) as conn:
        schemas = {r["nspname"] for r in conn.execute("SELECT nspname FROM pg_namespace")}
        versions = [r["version"] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert {"ods", "dws"} <= schemas
    assert versions == first


def test_dagster_url_uses_psycopg2_driver_on_same_server() -> None:
    url = db.dagster_storage_url("postgresql://postgres:@/zqyy?host=/tmp/sock")
    assert url == "postgresql+psycopg2://postgres:@/dagster?host=/tmp/sock"


def test_prepare_databases_creates_app_and_dagster_databases_and_reruns(
    pg_server_url: str, scratch_database: Callable[[str], str]
) -> None:
    app, dagster = scratch_database("zqyy_t_prepare_app"), scratch_database("zqyy_t_prepare_dagster")
    url = db.with_database(pg_server_url, app)

    assert prepare_databases(url, dagster) == [p.stem for p in migration_files()]
    assert prepare_databases(url, dagster) == []

    with db.connect(db.with_database(pg_server_url, "postgres")) as conn:
        names = {r["datname"] for r in conn.execute("SELECT datname FROM pg_database")}
    assert {app, dagster} <= names


def test_ensure_database_reports_an_existing_database(
    pg_server_url: str, scratch_database: Callable[[str], str]
) -> None:
    name = scratch_database("zqyy_t_ensure")
    assert db.ensure_database(pg_server_url, name) is True
    assert db.ensure_database(pg_server_url, name) is False
