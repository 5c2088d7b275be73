"""Helpers for the realtime tests: the API served on loopback (in a thread or as its own process),
a real WebSocket client with deadlines, and rows written the way other processes write them."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from api.main import create_app
from api.serving import UVICORN_OPTIONS, UVICORN_SETTINGS
from api.settings import Settings
from zqyy_assets.core import db, outbox
from zqyy_assets.testing.soak.stack import wait_for

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``condition`` until it is truthy; fail the test after ``timeout`` seconds."""
    return wait_for(condition, timeout, what, interval=0.01, error=AssertionError)


@contextmanager
def api_in_thread(settings: Settings) -> Iterator[tuple[str, Any]]:
    """The app served by uvicorn in a thread of this process: (``ws://host:port``, the app)."""
    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        **UVICORN_SETTINGS,  # as served: the hub writes live frames itself
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 20, "the API to start")
        wait_until(lambda: app.state.realtime.listening.is_set(), 10, "the realtime listener")
        yield f"ws://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(20)


def _health(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


@contextmanager
def api_process(db_url: str, port: int | None = None, **env: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """The API as its own uvicorn process (one worker) on loopback: (``ws://host:port``, the process)."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port), *UVICORN_OPTIONS]
        + ["--workers", "1", "--no-access-log", "--log-level", "warning"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "DATABASE_URL": db_url, "AUTH_CACHE_TTL_S": "0", **env},
    )
    try:
        wait_until(lambda: proc.poll() is not None or _health(port), 60, "the API process to serve")
        assert proc.poll() is None, "the API process exited at start"
        yield f"ws://127.0.0.1:{port}", proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server process (its clean shutdown), killed if it takes over 20 s."""
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_dagster(mode: str, db_url: str, *args: str) -> dict:
    """A Dagster run in a process of its own (``zqyy_assets.testing.realtime_runs``)."""
    out = subprocess.run(
        [sys.executable, "-m", "zqyy_assets.testing.realtime_runs", mode, db_url, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


class Ws:
    """A real WebSocket client with a deadline on every read."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn

    @classmethod
    @contextmanager
    def open(
        cls, url: str, *, token: str | None = None, via: str = "header", headers: dict[str, str] | None = None
    ) -> Iterator[Ws]:
        extra = dict(headers or {})
        subprotocols = None
        if token is not None and via == "header":
            extra["Authorization"] = f"Bearer {token}"
        elif token is not None and via == "subprotocol":
            subprotocols = ["bearer", token]
        elif token is not None and via == "query":
            url += ("&" if "?" in url else "?") + f"token={token}"
        with connect(url, additional_headers=extra, subprotocols=subprotocols, open_timeout=10) as conn:  # type: ignore[arg-type]
            yield cls(conn)

    def next(self, timeout: float = 15.0) -> dict:
        return json.loads(self.conn.recv(timeout=timeout))

    def take(self, n: int, timeout: float = 15.0) -> list[dict]:
        return [self.next(timeout) for _ in range(n)]

    def close_code(self, timeout: float = 10.0) -> int | None:
        """Read until the server closes; its close code."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self.conn.recv(timeout=max(0.01, deadline - time.monotonic()))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


def put_cache(db_url: str, site: int, target: str, *, rows: int = 1) -> list[int]:
    """Valid answers inserted in one statement (as another process would), their ids."""
    with db.transaction(db_url) as conn:
        return [
            r["id"]
            for r in conn.execute(
                """INSERT INTO biz.ai_cache (site_id, cache_type, target_id, input_hash, prompt_version, result_json,
                                             triggered_by, provider)
                   SELECT %s, 'app3_clue', %s || CASE WHEN n = 1 THEN '' ELSE '-' || n END, md5(random()::text),
                          'v1', '{}'::jsonb, 'test', 'offline'
                   FROM generate_series(1, %s) n ORDER BY n RETURNING id""",
                (site, target, rows),
            ).fetchall()
        ]


def subscribed(db_url: str, site: int, *clients: Ws) -> None:
    """Return once every client's subscription is registered: each has received a probe message
    published now. Whatever commits after this reaches them live (through LISTEN/NOTIFY), since
    their floor seq was fixed before the probe was delivered."""
    with db.transaction(db_url) as conn:
        seq = outbox.publish(conn, site, outbox.EVENT_STATUS, {"probe": True})
    for client in clients:
        while client.next()["seq"] < seq:
            pass
