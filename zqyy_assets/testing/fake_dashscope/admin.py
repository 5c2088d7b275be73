"""Using the fake DashScope from another process: the environment that points the project at it
(scripting over HTTP is ``fake_common.admin.FakeAdmin``)."""

from __future__ import annotations

from zqyy_assets.core.apps import APPS
from zqyy_assets.testing.fake_common.admin import FAKE_API_KEY, FakeAdmin

__all__ = ["FAKE_API_KEY", "FakeAdmin", "demo_env"]


def demo_env(base_url: str) -> dict[str, str]:
    """Environment for pointing the project at a fake server (``--print-env`` prints it)."""
    env = {
        "ZQYY_LLM_PROVIDER": "dashscope",
        "DASHSCOPE_API_KEY": FAKE_API_KEY,
        "DASHSCOPE_BASE_URL": base_url,
    }
    for spec in APPS.values():
        env[spec.app_id_env] = f"fake-{spec.name}"
    return env
