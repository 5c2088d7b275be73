"""A throwaway database on the embedded benchmark server (or DATABASE_URL's server)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import yaml

from zqyy_assets.core import db, embedded_pg
from zqyy_assets.core.embedded_pg import PROJECT_ROOT
from zqyy_assets.core.migrations import apply_migrations


def bench_server_url() -> str:
    external = os.environ.get("DATABASE_URL")
    return db.with_database(external, "postgres") if external else embedded_pg.start("bench", stop_on_exit=True)


@contextmanager
def scratch_database(prefix: str = "zqyy_bench") -> Iterator[str]:
    """A fresh migrated database, dropped afterwards with its ``_dagster`` twin; yields its URL."""
    server = bench_server_url()
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    db.ensure_database(server, name)
    url = db.with_database(server, name)
    try:
        apply_migrations(url)
        yield url
    finally:
        with db.connect(db.with_database(server, "postgres"), autocommit=True) as conn:
            for database in (name, f"{name}_dagster"):
                conn.execute(db.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db.sql.Identifier(database)))


@contextmanager
def postgres_dagster_instance(url: str) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance whose storage is Postgres on the same server (``<db>_dagster``), as in
    ``make demo``: run and event writes cost what they cost there."""
    storage = f"{db.database_name(url)}_dagster"
    db.ensure_database(url, storage)
    # The storage section of the project's dagster.yaml (pooled Postgres), pointed at this database.
    shipped = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text(encoding="utf-8"))["storage"]
    previous = os.environ.get("DAGSTER_PG_URL")
    os.environ["DAGSTER_PG_URL"] = db.dagster_storage_url(url, storage)
    try:
        with dg.instance_for_test(overrides={"storage": shipped}) as instance:
            yield instance
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_PG_URL", None)
        else:
            os.environ["DAGSTER_PG_URL"] = previous
