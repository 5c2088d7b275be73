"""What an LLM call costs in CNY: a price per model, input and output per thousand tokens.

A Bailian app answers with its model's usage (``usage.models[*]``: ``model_id``, input and
output tokens); each model's tokens are priced at that model's price. Tokens no model is named
for (a flat usage, the failed attempts before an answer) are priced at the call's model, and
a model missing from the table (or none at all) at the ``*`` entry.

A snapshot or alias (``qwen-plus-2025-07-28``, ``qwen-max-latest``) takes the price of the
longest table entry it starts with followed by ``-`` (``qwen-plus``, ``qwen-max``).

Defaults: Alibaba Cloud Model Studio (百炼) list prices for the mainland-China region, real-time
calls, the lowest input-length tier, read from help.aliyun.com/zh/model-studio/models and its
billing pages (模型列表 / 计量计费) on 2026-11-30. Prices change: override them with a JSON
file (``ZQYY_LLM_PRICES_FILE``) or JSON in ``ZQYY_LLM_PRICES``, each
``{"<model>": {"input_per_1k": 0.0024, "output_per_1k": 0.0096}}``; the variable's entries win
over the file's, which win over these, model by model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FALLBACK = "*"  # the price of a model the table does not name


@dataclass(frozen=True)
class ModelPrice:
    """CNY per 1,000 tokens."""

    input_per_1k: float
    output_per_1k: float

    def __post_init__(self) -> None:
        if self.input_per_1k < 0 or self.output_per_1k < 0:
            raise ValueError("a price cannot be negative")

    def raw_cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_1k + tokens_out * self.output_per_1k) / 1000


# Source and date: see the module docstring (元/千Token, 中国内地, 实时调用, lowest tier).
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "qwen-max": ModelPrice(0.0024, 0.0096),
    "qwen-plus": ModelPrice(0.0008, 0.002),
    "qwen-turbo": ModelPrice(0.0003, 0.0006),
    "qwen-long": ModelPrice(0.0005, 0.002),
    "qwen-flash": ModelPrice(0.00015, 0.0015),
    "qwen3-max": ModelPrice(0.0025, 0.01),
    # Unknown models are priced like the dearest usual one, so a CNY budget is never
    # under-counted for a model the table does not know yet.
    FALLBACK: ModelPrice(0.0025, 0.01),
}


def _price(model: str, value: Any) -> ModelPrice:
    if not isinstance(value, Mapping):
        raise ValueError(f"price of {model!r} must be an object with input_per_1k and output_per_1k")
    try:
        return ModelPrice(float(value["input_per_1k"]), float(value["output_per_1k"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"price of {model!r}: needs numeric input_per_1k and output_per_1k ({exc})") from None


def parse_prices(raw: Mapping[str, Any]) -> dict[str, ModelPrice]:
    """``{"model": {"input_per_1k": x, "output_per_1k": y}}`` as prices; ``ValueError`` naming a bad entry."""
    return {str(model).strip(): _price(str(model), value) for model, value in raw.items()}


class PriceTable:
    def __init__(self, prices: Mapping[str, ModelPrice] | None = None) -> None:
        self.prices: dict[str, ModelPrice] = {**DEFAULT_PRICES, **(prices or {})}
        # Longest names first: ``qwen-max-latest`` before ``qwen-max`` when both are listed.
        self._by_length = sorted((m for m in self.prices if m != FALLBACK), key=len, reverse=True)

    @classmethod
    def load(cls, file: Path | None = None, overrides: Mapping[str, Any] | None = None) -> PriceTable:
        """The defaults, then the JSON file's entries, then ``overrides`` (the variable's)."""
        prices: dict[str, ModelPrice] = {}
        if file is not None:
            try:
                raw = json.loads(Path(file).read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"price file {file}: {exc}") from None
            if not isinstance(raw, dict):
                raise ValueError(f"price file {file}: expected a JSON object of models")
            prices.update(parse_prices(raw))
        prices.update(parse_prices(overrides or {}))
        return cls(prices)

    def price_of(self, model: str | None) -> ModelPrice:
        """The model's price: exact name, else the longest ``<entry>-`` prefix, else ``*``."""
        name = (model or "").split(",")[0].strip()
        if name in self.prices and name != FALLBACK:
            return self.prices[name]
        for known in self._by_length:
            if name.startswith(known + "-"):
                return self.prices[known]
        return self.prices[FALLBACK]

    def cost(
        self,
        model: str | None,
        tokens_in: int,
        tokens_out: int,
        parts: Iterable[tuple[str, int, int]] = (),
    ) -> float:
        """CNY of a call's tokens, rounded to 6 places.

        ``parts``: ``(model, tokens_in, tokens_out)`` per ``usage.models[*]`` entry, each priced at
        its own model; the tokens beyond them are priced at ``model`` (its first name)."""
        total = 0.0
        named_in = named_out = 0
        for name, part_in, part_out in parts:
            total += self.price_of(name).raw_cost(part_in, part_out)
            named_in, named_out = named_in + part_in, named_out + part_out
        total += self.price_of(model).raw_cost(max(tokens_in - named_in, 0), max(tokens_out - named_out, 0))
        return round(total, 6)

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {m: {"input_per_1k": p.input_per_1k, "output_per_1k": p.output_per_1k} for m, p in self.prices.items()}
