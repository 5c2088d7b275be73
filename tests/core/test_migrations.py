from zqyy_assets.core import db
from zqyy_assets.core.migrations import (
    apply_migrations,
    migration_files,
    prepare_databases,
)


def test_migrations_apply_twice_cleanly(pg_server_url: str) -> None:
    name = "zqyy_t_migrate_twice"
    with db.connect(db.with_database(pg_server_url, "postgres"), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = db.with_database(pg_server_url, name)
    try:
        first = apply_migrations(url)
        second = apply_migrations(url)
        assert first == [p.stem for p in migration_files()]
        assert second == []
        with db.connect(url) as conn:
            schemas = {r["nspname"] for r in conn.execute("SELECT nspname FROM pg_namespace")}
            versions = [r["version"] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        assert {"ods", "dws"} <= schemas
        assert versions == first
    finally:
        with db.connect(db.with_database(pg_server_url, "postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_dagster_url_uses_psycopg2_driver_on_same_server() -> None:
    url = db.dagster_storage_url("postgresql://postgres:@/zqyy?host=/tmp/sock")
    assert url == "postgresql+psycopg2://postgres:@/dagster?host=/tmp/sock"


def test_prepare_databases_creates_app_and_dagster_databases_and_reruns(pg_server_url: str) -> None:
    app = "zqyy_t_prepare_app"
    admin = db.with_database(pg_server_url, "postgres")
    with db.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {app} WITH (FORCE)")
    url = db.with_database(pg_server_url, app)
    try:
        assert prepare_databases(url) == [p.stem for p in migration_files()]
        assert prepare_databases(url) == []
        with db.connect(admin) as conn:
            names = {r["datname"] for r in conn.execute("SELECT datname FROM pg_database")}
        assert {app, db.DAGSTER_DATABASE} <= names
    finally:
        with db.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {app} WITH (FORCE)")
