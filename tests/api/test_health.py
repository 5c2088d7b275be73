import uuid

from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from zqyy_assets.core import db
from zqyy_assets.core.migrations import migration_files
from zqyy_assets.core.settings import DatabaseSettings


def test_health_reports_database_and_schema_version(client: TestClient) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["schema_version"] == migration_files()[-1].stem


def test_health_is_503_when_schema_is_missing(pg_server_url: str) -> None:
    # A name of its own: concurrent runs share the test server.
    name = f"zqyy_t_health_unmigrated_{uuid.uuid4().hex[:8]}"
    db.ensure_database(pg_server_url, name)
    try:
        settings = Settings(
            database=DatabaseSettings(database_url=db.with_database(pg_server_url, name)),
            db_pool_min_size=1,
            db_pool_max_size=2,
        )
        with TestClient(create_app(settings)) as client:
            response = client.get("/api/health")
        assert response.status_code == 503
        assert response.json()["database"] == "unavailable"
    finally:
        with db.connect(db.with_database(pg_server_url, "postgres"), autocommit=True) as conn:
            conn.execute(db.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db.sql.Identifier(name)))
