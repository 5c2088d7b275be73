"""Databases for tests on the shared server: every name unique to its test run (two runs at once
must never drop each other's), every database dropped when its test is done."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from zqyy_assets.core import db


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
