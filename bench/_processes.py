"""Helper processes the benchmarks start (as a deployment would run them: not sharing our GIL)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def serving(args: list[str], pattern: str, what: str) -> Iterator[str]:
    """``python <args>`` as its own process; yields what ``pattern`` finds in the first line it
    prints on stderr (its address); stopped on exit."""
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline() if proc.stderr else ""
        match = re.search(pattern, line)
        if not match:
            raise RuntimeError(f"{what} did not start: {line!r}")
        yield match.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def otlp_sink() -> Iterator[str]:
    """The local OTLP/HTTP trace sink (``bench/_otlp_sink.py``), as a collector would be."""
    with serving([str(ROOT / "bench" / "_otlp_sink.py")], r"(http://\S+)", "the OTLP sink") as url:
        yield url
