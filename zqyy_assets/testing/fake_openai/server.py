"""``FakeOpenAI``: the fake OpenAI-compatible server (scripting and recording: ``fake_common.base``)."""

from __future__ import annotations

from zqyy_assets.testing.fake_common.admin import FAKE_API_KEY
from zqyy_assets.testing.fake_common.base import ScriptedFake
from zqyy_assets.testing.fake_common.scripts import DEFAULT_MODEL
from zqyy_assets.testing.fake_openai.http_handler import ChatCompletionsHandler, app_for_system_prompt

__all__ = ["FakeOpenAI", "app_for_system_prompt", "demo_env"]


class FakeOpenAI(ScriptedFake):
    """The fake server, in a daemon thread. Thread-safe; use as a context manager."""

    handler = ChatCompletionsHandler
    name = "fake-openai"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        latency_ms: float = 0.0,
        chunk_delay_ms: float = 0.0,
        chunks: int = 4,
        api_key: str | None = None,
        json_schema: bool = True,
    ) -> None:
        super().__init__(
            host, port, latency_ms=latency_ms, chunk_delay_ms=chunk_delay_ms, chunks=chunks, api_key=api_key
        )
        self.json_schema = json_schema  # False: a ``json_schema`` response_format is refused (400)

    @property
    def base_url(self) -> str:
        """What to give the SDK (``OpenAI(base_url=...)`` / ``OPENAI_BASE_URL``)."""
        return f"{self.url}/v1"


def demo_env(base_url: str, model: str = DEFAULT_MODEL) -> dict[str, str]:
    """Environment for pointing the project at a fake OpenAI-compatible server (``--print-env``)."""
    return {
        "ZQYY_LLM_PROVIDER": "openai",
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": FAKE_API_KEY,
        "ZQYY_LLM_MODEL": model,
    }
