"""A fake DashScope Application API: a real HTTP server on loopback that the unmodified
``dashscope`` SDK talks to. Tests, benchmarks and the demo (``--fake-llm``) use it.

It answers ``POST /api/v1/apps/{app_id}/completion`` as the service frames it:

- plain JSON: ``{"output": {"finish_reason": "stop", "session_id", "text"}, "usage": {...},
  "request_id"}``;
- SSE (``X-DashScope-SSE: enable``): one event per chunk, ``id:n`` / ``event:result`` /
  ``:HTTP_STATUS/200`` / ``data:{json}`` with no space after the colons, ``finish_reason``
  ``"null"`` until the last chunk's ``"stop"``, cumulative usage, text as deltas when
  ``incremental_output`` is true (else cumulative); the stream ends by closing;
- errors as ``{"code", "message", "request_id"}`` with the HTTP status, or inside a stream as
  ``event:error`` / ``:HTTP_STATUS/<status>``.

Answers are computed by the offline analyst from the prompt, so they are valid for each app's
schema. The app behind an ``app_id`` is the app name it contains (demo ids are
``fake-<name>``) or one mapped with ``app_ids=``.

Scripting, per app (by name, or ``"*"`` for every app): a queue of steps consumed one per
request (then ``ok``), latency, token counts, usage shape (``models`` | ``flat`` | ``total``),
stream chunk count, a fixed answer. Steps are shorthands (``"ok"``, ``"429"``, ``"500"``,
``"503"``, ``"401"``, ``"400"``, ``"403"``, ``"data_inspection"``, ``"arrearage"``,
``"invalid_json"``, ``"bare_list"``, ``"drop"``, ``"timeout"`` (no answer until the client gives
up), ``"hang:5000"`` (silent 5 s, then the connection closes), ``"cut:3"`` a stream cut after
3 chunks, ``"stream_error:2:Throttling.RateQuota"``, ``"slow:1500"``) or dicts
(``{"kind": "error", "status": 500, "code": "InternalError"}``, or ``{"answer": {...}}`` for one
response's own answer, e.g. one outside the app's schema; ``"session": false`` for an answer
that names no session).

Sessions: each answer's ``session_id`` is the request's, else a new one. A re-ask
(``core/llm/correction.py``) is answered from what it corrects: the prompt that opened its
session, or, without a session, the prompt it quotes first.

In-process::

    with FakeDashScope() as fake:
        fake.script("app2_finance", ["429", "ok"], tokens=(1200, 300))
        ... LLMService(load_settings(base_url=fake.base_url, api_key="fake-key", ...)) ...
        assert fake.count("app2_finance") == 2

A fault mix, drawn with a seed for each request no queued step answers (the rest ``ok``)::

    fake.script("*", mix={"429": 0.10, "500": 0.05, "hang:5000": 0.02, "cut:2": 0.02, "invalid_json": 0.01}, seed=7)

Every request records the usage last sent whole (``tokens_in`` / ``tokens_out``: what the service
bills; 0 for an error, a hang or a cut body); ``summary()`` adds them up.

Another process::

    python -m zqyy_assets.testing.fake_dashscope --port 8765 --latency-ms 200 [--print-env]

and script it over HTTP (``FakeAdmin`` wraps these): ``POST /_fake/script`` with
``{"app", "steps", "latency_ms", "tokens": [in, out], "usage_shape", "chunks", "answer",
"mix", "seed"}``, ``GET /_fake/requests[?app=...]``, ``GET /_fake/summary``, ``POST /_fake/reset``,
``GET /_fake/health``.
"""

from zqyy_assets.testing.fake_common.scripts import DEFAULT_MODEL, AppScript, Step, parse_step
from zqyy_assets.testing.fake_dashscope.admin import FAKE_API_KEY, FakeAdmin, demo_env
from zqyy_assets.testing.fake_dashscope.server import FakeDashScope

__all__ = [
    "DEFAULT_MODEL",
    "FAKE_API_KEY",
    "AppScript",
    "FakeAdmin",
    "FakeDashScope",
    "Step",
    "demo_env",
    "parse_step",
]
