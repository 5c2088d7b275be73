"""Databases for tests on the shared server: every name unique to its test run (two runs at once
must never drop each other's), every database dropped when its test is done."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from zqyy_assets.core import db

REPO_ROOT = Path(__file__).resolve().parents[1]


def unique_database_name(prefix: str) -> str:
    """A database name no other test run on the shared server uses."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def drop_database(server_url: str, name: str) -> None:
    with db.connect(db.with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(db.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db.sql.Identifier(name)))


@contextmanager
def cloned_database(server_url: str, template: str, prefix: str = "zqyy_t") -> Iterator[str]:
    """A fresh copy of ``template`` (a migrated, empty database): its URL, dropped on exit."""
    name = unique_database_name(prefix)
    with db.connect(db.with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(
            db.sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(db.sql.Identifier(name), db.sql.Identifier(template))
        )
    try:
        yield db.with_database(server_url, name)
    finally:
        drop_database(server_url, name)


def allow_connections(server_url: str, db_url: str, allowed: bool) -> None:
    """The database away (``False``: refuses new connections, its sessions ended) or back: an
    outage of the real server, as a restart would cause, for one test's database alone."""
    name = db.database_name(db_url)
    with db.connect(server_url, autocommit=True) as conn:
        conn.execute(
            db.sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
                db.sql.Identifier(name), db.sql.Literal(allowed)
            )
        )
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))


@contextmanager
def shipped_dagster_instance(
    server_url: str, storage_db: str, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """The instance the shipped dagster.yaml gives (pooled Postgres storage), on ``storage_db``."""
    db.ensure_database(server_url, storage_db)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", db.dagster_storage_url(server_url, storage_db))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        yield instance
