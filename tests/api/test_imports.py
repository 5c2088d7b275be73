"""The API talks to Dagster over GraphQL/HTTP only: importing it must not load Dagster."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_api_loads_no_dagster() -> None:
    # A fresh interpreter: this test process has Dagster loaded by other tests.
    probe = "import sys, api.main; print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", f"api.main imports Dagster: {result.stdout.strip()[:500]}"
