"""Database access for the project's own code (psycopg 3).

Dagster's storage talks to the same server through dagster-postgres (psycopg2); the helpers
here derive that URL so both sides always point at one server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import DictRow, dict_row

APP_DATABASE = "zqyy"
DAGSTER_DATABASE = "dagster"

# What :func:`connect` returns: rows are dicts keyed by column name.
DictConnection = psycopg.Connection[DictRow]


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database (query string, e.g. a socket host, kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def dagster_storage_url(app_url: str, database: str = DAGSTER_DATABASE) -> str:
    """Dagster's storage URL on the same server.

    dagster-postgres with SQLAlchemy 2.1 picks psycopg 3 for a bare ``postgresql://`` URL and
    then fails on its first ``NOTIFY``; naming the psycopg2 driver avoids that.
    """
    return psycopg2_url(with_database(app_url, database))


def psycopg2_url(url: str) -> str:
    """``url`` naming the psycopg2 driver when it names none (see ``dagster_storage_url``)."""
    scheme, rest = url.split("://", 1)
    if scheme in ("postgres", "postgresql"):
        scheme = "postgresql+psycopg2"
    return f"{scheme}://{rest}"


def connect(url: str, *, autocommit: bool = False) -> DictConnection:
    return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row)


@contextmanager
def transaction(url: str) -> Iterator[DictConnection]:
    """A connection whose work commits on success and rolls back on any error."""
    with connect(url) as conn, conn.transaction():
        yield conn


def ensure_database(server_url: str, database: str) -> bool:
    """Create ``database`` on the server if it does not exist; True when it was created."""
    admin_url = with_database(server_url, "postgres")
    with connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        except psycopg.errors.DuplicateDatabase:
            return False  # another process created it between the check and here
        return True
