"""A fake OpenAI-compatible chat completions server: a real HTTP server on loopback that the
unmodified ``openai`` SDK talks to, beside ``fake_dashscope`` (the same scripted steps).

It answers ``POST /v1/chat/completions`` as OpenAI (and DashScope's compatible mode, vLLM,
Ollama) frames it:

- plain JSON: ``{"id", "object": "chat.completion", "created", "model", "choices": [{"index",
  "message": {"role": "assistant", "content"}, "finish_reason": "stop"}], "usage":
  {"prompt_tokens", "completion_tokens", "total_tokens"}}``;
- SSE (``"stream": true``): ``data: {chunk}`` events of ``chat.completion.chunk`` with the text
  as ``choices[0].delta.content``, ``finish_reason`` null until the last; with
  ``stream_options.include_usage`` every chunk carries ``"usage": null`` and one last chunk has
  no choices and the usage; then ``data: [DONE]``;
- errors as ``{"error": {"message", "type", "param", "code"}}`` with the HTTP status, or in a
  stream as a ``data: {"error": ...}`` event (what the SDK raises as ``APIError``).

The app a request is for is the one whose versioned system prompt (``zqyy_assets/prompts``) is
its system message; answers are the offline analyst's for the user message (the prompt JSON),
so they are valid for each app's schema. A request with an unknown system prompt gets
``{"text": "ok"}``.

Scripting as ``fake_dashscope``'s, per app name, per model name, or ``"*"`` (steps ``"ok"``,
``"429"``, ``"500"``, ``"503"``, ``"401"``, ``"400"``, ``"403"``, ``"error:404:model_not_found"``,
``"data_inspection"``, ``"invalid_json"``, ``"bare_list"``, ``"drop"``, ``"timeout"``,
``"cut:3"``, ``"stream_error:2:Throttling.RateQuota"``, ``"slow:1500"``; latency, tokens,
chunks, a fixed answer, the model it reports). ``json_schema=False`` makes it refuse
``response_format`` ``json_schema`` with a 400, as servers without structured output do.

In-process::

    with FakeOpenAI() as fake:
        fake.script("app2_finance", ["429", "ok"], tokens=(1200, 300))
        ... LLMService(load_settings(provider="openai", openai_base_url=fake.base_url, ...)) ...
        assert fake.count("app2_finance") == 2

Another process: ``python -m zqyy_assets.testing.fake_openai --port 8766 --print-env``, scripted
over HTTP with ``FakeAdmin`` (``fake_common.admin``).
"""

from zqyy_assets.testing.fake_common.admin import FAKE_API_KEY, FakeAdmin
from zqyy_assets.testing.fake_common.scripts import DEFAULT_MODEL, Step, parse_step
from zqyy_assets.testing.fake_openai.server import FakeOpenAI, demo_env

__all__ = ["DEFAULT_MODEL", "FAKE_API_KEY", "FakeAdmin", "FakeOpenAI", "Step", "demo_env", "parse_step"]
