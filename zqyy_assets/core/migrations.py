"""Versioned schema migrations: numbered SQL files applied once each, in order.

Each file runs in its own transaction under an advisory lock, so two processes applying at
once (the demo and a test run, say) neither race nor double-apply. Re-running is a no-op.
"""

from __future__ import annotations

from pathlib import Path

from zqyy_assets.core import db
from zqyy_assets.core.db import connect

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"
_LOCK_ID = 7_240_001  # arbitrary, project-wide advisory lock id for migrations


def migration_files() -> list[Path]:
    return sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql"))


def apply_migrations(url: str) -> list[str]:
    """Apply every migration not yet applied; return the versions applied now."""
    applied_now: list[str] = []
    with connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            conn.execute(
                """CREATE TABLE IF NOT EXISTS public.schema_migrations (
                       version text PRIMARY KEY,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {r["version"] for r in conn.execute("SELECT version FROM public.schema_migrations")}
            for path in migration_files():
                version = path.stem
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text(encoding="utf-8"))
                    conn.execute("INSERT INTO public.schema_migrations (version) VALUES (%s)", (version,))
                applied_now.append(version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return applied_now


def prepare_databases(app_url: str, dagster_database: str = db.DAGSTER_DATABASE) -> list[str]:
    """Create the app and Dagster databases if missing, then migrate the app database."""
    db.ensure_database(app_url, db.database_name(app_url))
    db.ensure_database(app_url, dagster_database)
    return apply_migrations(app_url)
