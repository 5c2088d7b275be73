"""The LLM layer: the Bailian apps behind guards, retries and a ledger (see resources.py).

Exports are resolved lazily so the API process can import ``zqyy_assets.defs.llm.service``
(and the errors) without importing Dagster.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "LLMResource": "zqyy_assets.defs.llm.resources",
    "LLMService": "zqyy_assets.defs.llm.service",
    "AppAnswer": "zqyy_assets.defs.llm.service",
    "ChatDelta": "zqyy_assets.defs.llm.service",
    "LLMSettings": "zqyy_assets.defs.llm.settings",
    "load_settings": "zqyy_assets.defs.llm.settings",
    "MAX_REQUESTS_PER_ANSWER": "zqyy_assets.defs.llm.settings",
    "APPS": "zqyy_assets.defs.llm.apps",
    "APP_NAMES": "zqyy_assets.defs.llm.apps",
    "LLMError": "zqyy_assets.defs.llm.errors",
    "PermanentLLMError": "zqyy_assets.defs.llm.errors",
    "TransientLLMError": "zqyy_assets.defs.llm.errors",
    "StreamInterrupted": "zqyy_assets.defs.llm.errors",
    "GuardRefused": "zqyy_assets.defs.llm.errors",
    "CircuitOpen": "zqyy_assets.defs.llm.errors",
    "RateLimited": "zqyy_assets.defs.llm.errors",
    "BudgetExceeded": "zqyy_assets.defs.llm.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
