"""Test fixtures on a real PostgreSQL server.

With DATABASE_URL set, tests use that server; otherwise the embedded server under
``.pgdata/test`` (separate from the demo's, so a test run never touches demo data). Every
test that asks for ``db_url`` gets a fresh database cloned from a migrated template; every
database name is unique to the run (``tests/databases.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.databases import cloned_database, drop_database, unique_database_name
from zqyy_assets.core import db, embedded_pg
from zqyy_assets.core.migrations import apply_migrations
from zqyy_assets.core.settings import DatabaseSettings


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of the test server (its ``postgres`` database)."""
    external = DatabaseSettings().database_url
    if external:
        yield db.with_database(external, "postgres")
        return
    yield embedded_pg.start("test", stop_on_exit=True)


@pytest.fixture(scope="session")
def template_db(pg_server_url: str) -> Iterator[str]:
    """A migrated database used as the template for each test's fresh database."""
    name = unique_database_name("zqyy_tpl")
    db.ensure_database(pg_server_url, name)
    apply_migrations(db.with_database(pg_server_url, name))
    yield name
    drop_database(pg_server_url, name)


@pytest.fixture
def db_url(pg_server_url: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated, empty database for one test."""
    with cloned_database(pg_server_url, template_db) as url:
        yield url


@pytest.fixture
def scratch_database(pg_server_url: str) -> Iterator[Callable[[str], str]]:
    """Names for databases a test creates itself, unique to this run and dropped afterwards."""
    names: list[str] = []

    def name(prefix: str) -> str:
        names.append(unique_database_name(prefix))
        return names[-1]

    yield name
    for created in names:
        drop_database(pg_server_url, created)


@pytest.fixture
def spans() -> Iterator[Any]:
    """Tracing on for one test, into the SDK's in-memory exporter (``spans.get_finished_spans()``)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from zqyy_assets.core import telemetry

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_provider(provider)
    try:
        yield exporter
    finally:
        telemetry.reset()
        provider.shutdown()
