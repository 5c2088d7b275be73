"""The layering the project rests on, checked: the core and the API import no Dagster, and no
module grows past 400 lines (a module that does several jobs shows up here first)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import zqyy_assets.core

ROOT = Path(__file__).resolve().parents[2]
MAX_MODULE_LINES = 400


def _core_modules() -> list[str]:
    return sorted(info.name for info in pkgutil.walk_packages(zqyy_assets.core.__path__, prefix="zqyy_assets.core."))


def _dagster_loaded_after_import(modules: list[str]) -> list[str]:
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dagster' or m.startswith('dagster_')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return eval(out.stdout.strip().splitlines()[-1])  # a printed list of module names


def test_the_core_imports_no_dagster() -> None:
    modules = _core_modules()
    assert "zqyy_assets.core.vocabulary" in modules and len(modules) > 10
    assert _dagster_loaded_after_import(modules) == []


def test_the_api_imports_no_dagster() -> None:
    assert _dagster_loaded_after_import(["api.main"]) == []


@pytest.mark.parametrize("package", ["zqyy_assets", "api"])
def test_no_module_is_over_400_lines(package: str) -> None:
    too_long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / package).rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}
