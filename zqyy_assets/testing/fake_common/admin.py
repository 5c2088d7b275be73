"""Scripting a fake that runs in another process, over its ``/_fake/*`` routes."""

from __future__ import annotations

from typing import Any

FAKE_API_KEY = "fake-key"


class FakeAdmin:
    """Scripts a fake server running in another process; ``url`` is its root or the base URL given to an SDK."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/").removesuffix("/api/v1").removesuffix("/v1")

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
        """Requests received, tokens billed and requests per step (``ScriptedFake.summary``)."""
        import requests

        response = requests.get(f"{self.url}/_fake/summary", timeout=10)
        response.raise_for_status()
        return response.json()

    def count(self, app: str | None = None) -> int:
        return len(self.requests(app))
