"""Using a fake that runs in another process: scripting it over HTTP, and the environment that
points the project at it."""

from __future__ import annotations

from typing import Any

from zqyy_assets.core.apps import APPS

FAKE_API_KEY = "fake-key"


class FakeAdmin:
    """Scripts a fake server running in another process, over its ``/_fake/*`` endpoints."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/").removesuffix("/api/v1")

    def _post(self, path: str, body: dict) -> dict:
        import requests

        response = requests.post(f"{self.url}{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def script(self, app: str, steps: list | tuple = (), **settings: Any) -> None:
        self._post("/_fake/script", {"app": app, "steps": list(steps), **settings})

    def reset(self) -> None:
        self._post("/_fake/reset", {})

    def requests(self, app: str | None = None) -> list[dict]:
        import requests

        params = {"app": app} if app else None
        response = requests.get(f"{self.url}/_fake/requests", params=params, timeout=10)
        response.raise_for_status()
        return response.json()["requests"]

    def summary(self) -> dict:
        """Requests received, tokens billed and requests per step (``FakeDashScope.summary``)."""
        import requests

        response = requests.get(f"{self.url}/_fake/summary", timeout=10)
        response.raise_for_status()
        return response.json()

    def count(self, app: str | None = None) -> int:
        return len(self.requests(app))


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
