"""Cumulative LLM usage of one Dagster step, as the ``llm.*`` materialization metadata.

Plain numbers and text (no Dagster here); ``LLMResource`` adds them to the step's output after
every call, as dagster-openai does for OpenAI.
"""

from __future__ import annotations

from typing import Any

from zqyy_assets.core.llm.service import AppAnswer


class UsageMeter:
    def __init__(self) -> None:
        self.calls = self.failed = self.refused = 0
        self.fallback_answers = 0  # answered by the fallback provider (``providers.py``)
        self.tokens_in = self.tokens_out = 0
        self.cost_cny = 0.0
        self.latency_total = self.latency_max = 0
        self.providers: list[str] = []
        self.models: list[str] = []
        self.prompt_versions: dict[str, str] = {}

    def add_answer(self, app_name: str, answer: AppAnswer) -> None:
        self.calls += 1
        self.fallback_answers += answer.fallback_for is not None
        self.tokens_in += answer.tokens_in
        self.tokens_out += answer.tokens_out
        self.cost_cny += answer.cost_cny
        self.latency_total += answer.latency_ms
        self.latency_max = max(self.latency_max, answer.latency_ms)
        if answer.provider not in self.providers:
            self.providers.append(answer.provider)
        for model in filter(None, answer.model.split(",")):
            if model not in self.models:
                self.models.append(model)
        self.prompt_versions[app_name] = answer.prompt_version

    def metadata(self) -> dict[str, Any]:
        return {
            "llm.calls": self.calls,
            "llm.failed_calls": self.failed,
            "llm.refused_calls": self.refused,
            "llm.fallback_answers": self.fallback_answers,
            "llm.tokens_in": self.tokens_in,
            "llm.tokens_out": self.tokens_out,
            "llm.total_tokens": self.tokens_in + self.tokens_out,
            "llm.cost_cny": round(self.cost_cny, 6),
            "llm.latency_ms_avg": round(self.latency_total / self.calls, 1) if self.calls else 0.0,
            "llm.latency_ms_max": self.latency_max,
            "llm.provider": ",".join(self.providers),
            "llm.model": ",".join(self.models),
            "llm.prompt_versions": ", ".join(f"{k}={v}" for k, v in sorted(self.prompt_versions.items())),
        }
