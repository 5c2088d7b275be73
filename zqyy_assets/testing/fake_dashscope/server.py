"""``FakeDashScope``: the fake DashScope server (scripting and recording: ``fake_common.base``)."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

from zqyy_assets.core.llm.correction import REASK_MARK
from zqyy_assets.testing.fake_common.base import ScriptedFake
from zqyy_assets.testing.fake_dashscope.http_handler import CompletionHandler
from zqyy_assets.testing.fake_dashscope.quota import ProviderQuota

MAX_SESSIONS = 4096  # sessions remembered (the newest), for re-asks in a session


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
        qps: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            host,
            port,
            latency_ms=latency_ms,
            chunk_delay_ms=chunk_delay_ms,
            chunks=chunks,
            api_key=api_key,
            seed=seed,
        )
        self.app_ids = dict(app_ids or {})
        self.quota = ProviderQuota(qps) if qps else None  # the provider's limit (quota.py)
        self._sessions: OrderedDict[str, str] = OrderedDict()  # session id -> the prompt that opened it
        self._sessions_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """What to give the SDK (``base_address`` / ``DASHSCOPE_BASE_URL``)."""
        return f"{self.url}/api/v1"

    def reset(self) -> None:
        super().reset()
        with self._sessions_lock:
            self._sessions.clear()

    def conversation_prompt(self, session_id: str, prompt: str) -> str:
        """The prompt to answer. A re-ask (``REASK_MARK``, ``core/llm/correction.py``) is answered
        from what it corrects: the prompt that opened its session, or the one it quotes first."""
        with self._sessions_lock:
            opened = self._sessions.setdefault(session_id, prompt)
            self._sessions.move_to_end(session_id)
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        if REASK_MARK not in prompt:
            return prompt
        return opened if prompt.startswith(REASK_MARK) else _leading_json(prompt)


def _leading_json(prompt: str) -> str:
    """The JSON document a prompt starts with, or the whole prompt when it starts with none."""
    try:
        _, end = json.JSONDecoder().raw_decode(prompt.lstrip())
    except ValueError:
        return prompt
    return prompt.lstrip()[:end]
