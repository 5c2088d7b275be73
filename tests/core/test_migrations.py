from collections.abc import Callable

import psycopg
import pytest

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


def test_0013_moves_old_rows_to_the_seeds_words_and_folds_open_alerts(
    pg_server_url: str, scratch_database: Callable[[str], str]
) -> None:
    """Rows written in the old vocabulary (before 0013): launched events, a timed-out call
    ledgered failed, one pending alert per failed run."""
    url = db.with_database(pg_server_url, scratch_database("zqyy_t_m0013"))
    db.ensure_database(pg_server_url, db.database_name(url))
    with db.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.schema_migrations (version text PRIMARY KEY, applied_at timestamptz)")
        for path in migration_files():
            if path.stem >= "0013":
                break
            conn.execute(path.read_text(encoding="utf-8"))
            conn.execute("INSERT INTO public.schema_migrations VALUES (%s, now())", (path.stem,))
        launched = conn.execute(
            """INSERT INTO biz.ai_events (event_type, site_id, member_id, biz_date, status)
               VALUES ('consumption', 1, 7, '2026-03-01', 'launched') RETURNING id"""
        ).fetchone()["id"]
        conn.execute(
            """INSERT INTO biz.ai_call_ledger (site_id, app_name, provider, status, error_code)
               VALUES (1, 'app3_clue', 'dashscope', 'failed', 'Timeout'),
                      (1, 'app3_clue', 'dashscope', 'failed', 'InternalError')"""
        )
        for run, at, message in (("r1", "2026-03-01 10:00", "first"), ("r2", "2026-03-01 11:00", "second")):
            conn.execute(
                """INSERT INTO biz.ai_alerts (site_id, app_type, error_message, dagster_run_id, created_at)
                   VALUES (1, 'app3_clue', %s, %s, %s)""",
                (message, run, at),
            )
        conn.execute(
            """INSERT INTO biz.ai_alerts (site_id, app_type, error_message, dagster_run_id, alert_status)
               VALUES (1, 'app3_clue', 'handled', 'r3', 'acknowledged')"""
        )
        outbox_before = conn.execute("SELECT count(*) AS n FROM biz.realtime_outbox").fetchone()["n"]

    assert apply_migrations(url)[0] == "0013_alerts_statuses"  # then any later ones

    with db.connect(url) as conn:
        assert conn.execute("SELECT status FROM biz.ai_events WHERE id = %s", (launched,)).fetchone()["status"] == (
            "running"
        )
        # The rename pushed nothing (it is not news).
        assert conn.execute("SELECT count(*) AS n FROM biz.realtime_outbox").fetchone()["n"] == outbox_before
        calls = [r["status"] for r in conn.execute("SELECT status FROM biz.ai_call_ledger ORDER BY id")]
        assert calls == ["timeout", "failed"]
        alerts = conn.execute(
            "SELECT alert_status, occurrences, error_message, last_seen_at, dagster_run_id"
            " FROM biz.ai_alerts ORDER BY id"
        ).fetchall()
        assert [(a["alert_status"], a["occurrences"], a["error_message"], a["dagster_run_id"]) for a in alerts] == [
            ("pending", 2, "second", "r1"),
            ("acknowledged", 1, "handled", "r3"),
        ]
        counted = {r["dagster_run_id"] for r in conn.execute("SELECT dagster_run_id FROM biz.ai_alert_runs")}
        assert counted == {"r1", "r2", "r3"}  # a re-delivered old run is not counted again
        # The old words are refused now.
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE biz.ai_events SET status = 'launched' WHERE id = %s", (launched,))
