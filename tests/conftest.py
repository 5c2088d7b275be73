"""Test fixtures on a real PostgreSQL server.

With DATABASE_URL set, tests use that server; otherwise the embedded server under
``.pgdata/test`` (separate from the demo's, so a test run never touches demo data). Every
test that asks for ``db_url`` gets a fresh database cloned from a migrated template.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from zqyy_assets.core import db, embedded_pg
from zqyy_assets.core.migrations import apply_migrations


def _drop(server_url: str, name: str) -> None:
    with db.connect(db.with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(db.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db.sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of the test server (its ``postgres`` database)."""
    external = os.environ.get("DATABASE_URL")
    if external:
        yield db.with_database(external, "postgres")
        return
    yield embedded_pg.start("test", stop_on_exit=True)


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> Iterator[str]:
    """A migrated database used as the template for each test's fresh database."""
    name = f"zqyy_tpl_{uuid.uuid4().hex[:8]}"
    db.ensure_database(pg_server_url, name)
    apply_migrations(db.with_database(pg_server_url, name))
    yield name
    _drop(pg_server_url, name)


@pytest.fixture
def db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated, empty database for one test."""
    name = f"zqyy_t_{uuid.uuid4().hex[:10]}"
    with db.connect(db.with_database(pg_server_url, "postgres"), autocommit=True) as conn:
        conn.execute(
            db.sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(db.sql.Identifier(name), db.sql.Identifier(template_db))
        )
    yield db.with_database(pg_server_url, name)
    _drop(pg_server_url, name)
