"""``FakeDashScope``: the fake DashScope server (scripting and recording: ``fake_common.base``)."""

from __future__ import annotations

from zqyy_assets.testing.fake_common.base import ScriptedFake
from zqyy_assets.testing.fake_dashscope.http_handler import CompletionHandler


class FakeDashScope(ScriptedFake):
    """The fake server, in a daemon thread. Thread-safe; use as a context manager."""

    handler = CompletionHandler
    name = "fake-dashscope"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_ms: float = 0.0,
        chunk_delay_ms: float = 0.0,
        chunks: int = 4,
        api_key: str | None = None,
        app_ids: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            host, port, latency_ms=latency_ms, chunk_delay_ms=chunk_delay_ms, chunks=chunks, api_key=api_key
        )
        self.app_ids = dict(app_ids or {})

    @property
    def base_url(self) -> str:
        """What to give the SDK (``base_address`` / ``DASHSCOPE_BASE_URL``)."""
        return f"{self.url}/api/v1"
