"""Metrics across two uvicorn worker processes (prometheus_client's multiprocess mode), scraped over
HTTP on the API and on the separate token-free port, parsed with prometheus_client's parser."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from api.serving import UVICORN_OPTIONS
from tests.api.conftest import bearer
from tests.api.realtime_support import ROOT, free_port, stop, wait_until

HEALTH = {"method": "GET", "route": "/api/health", "status": "200"}


def _health_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "zqyy_http_request_duration_seconds_count" and sample.labels == HEALTH:
                return sample.value
    return 0.0


def _get(url: str, **kwargs) -> requests.Response:
    # A new connection for each request, so the kernel hands them to either worker.
    with requests.Session() as session:
        return session.get(url, timeout=10, headers={"Connection": "close", **kwargs.pop("headers", {})}, **kwargs)


def _workers_with_requests(multiproc_dir: Path) -> int:
    """Worker processes that have observed a request (each writes its own histogram file)."""
    return len(list(multiproc_dir.glob("histogram_*.db")))


def test_two_workers_add_up_on_the_api_and_on_the_metrics_port(db_url: str, make_token, tmp_path: Path) -> None:
    multiproc_dir = tmp_path / "prometheus"
    multiproc_dir.mkdir()
    port, metrics_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": db_url,
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
        "METRICS_PORT": str(metrics_port),
        "METRICS_HOST": "127.0.0.1",
    }
    command = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [*command, *UVICORN_OPTIONS, "--workers", "2", "--no-access-log", "--log-level", "warning"],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        sent = 0

        def one_more_health() -> bool:
            nonlocal sent
            try:
                ok = _get(f"{base}/api/health").status_code == 200
            except requests.ConnectionError:
                assert proc.poll() is None, "the API exited"
                return False
            sent += ok
            return ok and _workers_with_requests(multiproc_dir) == 2

        # Until both workers have answered some of them (the kernel spreads new connections).
        wait_until(one_more_health, 90, "both workers to answer health checks")
        admin = bearer(make_token("admin"))
        scrapes = [_get(f"{base}/metrics", headers=admin) for _ in range(4)]  # whichever worker answers
        scrapes.append(_get(f"http://127.0.0.1:{metrics_port}/metrics"))  # no token on the scrape port
        for response in scrapes:
            assert response.status_code == 200, response.text
            assert _health_count(response.text) == sent  # every worker's requests, from any worker
        assert _get(f"{base}/metrics").status_code == 401  # the API's own /metrics still needs the token
    finally:
        stop(proc)
