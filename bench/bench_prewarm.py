"""Benchmark: the app2 prewarm (72 partitions x every active site) as one Dagster run.

Generates a demo venue (2 sites x 365 days by default), materializes DWS, starts the fake
DashScope server in its own process (500 ms a call) and runs the prewarm through the real
``dashscope`` SDK. Prints the wall time next to

- the serial baseline: calls x latency, what the old dispatcher's one-call-at-a-time loop cost;
- the limit: ceil(calls / concurrency) x latency, the best bounded concurrency can do.

Then prewarms again on unchanged data and prints the calls and tokens it spent (memoization)
and what memoization saved (tokens, CNY). Goals: at concurrency 8, at least 5x faster than
serial and within limit + 5 s; the second prewarm makes 0 calls and spends 0 tokens.

Tracing overhead, in the same run: forced prewarms (every answer asked again) with tracing off,
on, off again (A, B, A'), then memoized prewarms likewise. "On" is the production setup: the
SDK's batching processor exporting over OTLP/HTTP (protobuf) to a local sink in its own process
(``bench/_otlp_sink.py``, which counts what arrives). Goal: B's wall time within 10 % of the
mean of A and A'.

    .venv/bin/python bench/bench_prewarm.py [--sites 2] [--days 365] [--latency-ms 500] [--concurrency 8]
                                            [--provider dashscope|openai]

``--provider openai`` runs the same against the fake OpenAI-compatible server (the ``openai`` SDK).

The database is created on the embedded server (``.pgdata/bench``, or DATABASE_URL's server)
and dropped afterwards; the fake server process is stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
from _db import postgres_dagster_instance, scratch_database  # noqa: E402
from _processes import otlp_sink, serving  # noqa: E402

from zqyy_assets.core import db, telemetry  # noqa: E402
from zqyy_assets.core.apps import APP_NAMES  # noqa: E402
from zqyy_assets.defs.ai.jobs import materialize_app2_prewarm  # noqa: E402
from zqyy_assets.defs.ai.resources import LLMResource  # noqa: E402
from zqyy_assets.defs.resources import VenueCalendarResource  # noqa: E402
from zqyy_assets.testing.fake_dashscope import FAKE_API_KEY, FakeAdmin  # noqa: E402
from zqyy_assets.tools.demo_venue import generate_demo_venue  # noqa: E402
from zqyy_assets.tools.dws_refresh import materialize_dws, ods_date_range  # noqa: E402


@contextmanager
def fake_server(latency_ms: float, provider: str = "dashscope") -> Iterator[str]:
    """The fake server (DashScope's, or the OpenAI-compatible one) as its own process (as in a real
    deployment, not sharing our GIL)."""
    module, url_pattern = {
        "dashscope": ("zqyy_assets.testing.fake_dashscope", r"(http://\S+/api/v1)"),
        "openai": ("zqyy_assets.testing.fake_openai", r"(http://\S+/v1)"),
    }[provider]
    command = ["-m", module, "--port", "0", "--latency-ms", str(latency_ms)]
    with serving(command, url_pattern, "the fake server") as url:
        yield url


def provider_settings(provider: str, base_url: str) -> dict[str, Any]:
    """The LLM resource's provider fields for the fake server at ``base_url``."""
    if provider == "openai":
        return {"provider": "openai", "openai_base_url": base_url, "openai_api_key": FAKE_API_KEY, "model": "qwen-plus"}
    return {
        "provider": "dashscope",
        "api_key": FAKE_API_KEY,
        "base_url": base_url,
        "app_ids": {name: f"fake-{name}" for name in APP_NAMES},
    }


def ledger_totals(url: str) -> tuple[int, int]:
    with db.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) AS calls, COALESCE(sum(tokens_used), 0) AS tokens FROM biz.ai_call_ledger"
        ).fetchone()
    return row["calls"], row["tokens"]


TOTALS = ("calls", "cache_hits", "tokens_in", "tokens_out", "cost_cny", "memo_tokens_avoided", "memo_cost_avoided_cny")


def run_totals(result: dg.ExecuteInProcessResult) -> dict[str, float]:
    totals: dict[str, float] = dict.fromkeys(("partitions", *TOTALS), 0)
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        totals["partitions"] += 1
        for key in TOTALS:
            totals[key] += metadata[key].value
    return totals


@contextmanager
def tracing_to(sink_url: str) -> Iterator[None]:
    """Tracing on as in production (batching processor, OTLP/HTTP exporter), into the sink."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "bench-prewarm"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{sink_url}/v1/traces")))
    telemetry.use_provider(provider)
    try:
        yield
    finally:
        telemetry.reset()
        provider.shutdown()  # flushes what is left to the sink


def sink_counts(sink_url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{sink_url}/count", timeout=10) as response:
        return json.loads(response.read())


def overhead(label: str, prewarm: Callable[[], dg.ExecuteInProcessResult], sink_url: str) -> None:
    """A (off), B (on), A' (off): B's wall time against the mean of A and A'."""
    walls: dict[str, float] = {}
    before = sink_counts(sink_url)["spans"]
    for name in ("A", "B", "A'"):
        t0 = time.perf_counter()
        if name == "B":
            with tracing_to(sink_url):
                result = prewarm()
        else:
            result = prewarm()
        walls[name] = time.perf_counter() - t0
        assert result.success, f"prewarm {label} {name} failed"
    exported = sink_counts(sink_url)["spans"] - before
    base = (walls["A"] + walls["A'"]) / 2
    ratio = walls["B"] / base
    off_again = walls["A'"]
    print(
        f"  {label}: off {walls['A']:.2f} s, on {walls['B']:.2f} s, off again {off_again:.2f} s | "
        f"on / off {ratio:.3f} (goal <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'}); "
        f"{exported} spans exported"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=2)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--latency-ms", type=float, default=500.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--provider", choices=("dashscope", "openai"), default="dashscope")
    args = parser.parse_args()
    latency_s = args.latency_ms / 1000

    with scratch_database("zqyy_bench_prewarm") as url:
        t0 = time.perf_counter()
        generate_demo_venue(
            url,
            sites=args.sites,
            days=args.days,
            seed=args.seed,
            end_date=date.today() - timedelta(days=1),
            show_progress=False,
        )
        calendar = VenueCalendarResource()
        span = ods_date_range(url, calendar)
        with postgres_dagster_instance(url) as instance, fake_server(args.latency_ms, args.provider) as base_url:
            dws = materialize_dws(instance, url, span.first, span.last, calendar)
            assert dws.success, "DWS did not materialize"
            print(
                f"setup ({args.provider}): {args.sites} sites x {args.days} days generated, DWS materialized "
                f"in {time.perf_counter() - t0:.1f} s"
            )

            llm = LLMResource(
                database_url=url,
                **provider_settings(args.provider, base_url),
                # the guards are not what is measured: wide enough never to refuse or wait
                rate_per_minute=600_000.0,
                rate_burst=10_000,
                daily_token_limit=1_000_000_000,
                monthly_token_limit=1_000_000_000,
                request_timeout_seconds=60.0,
            )
            fake = FakeAdmin(base_url)

            t0 = time.perf_counter()
            first = materialize_app2_prewarm(
                instance, database_url=url, llm=llm, trigger="bench", concurrency=args.concurrency
            )
            wall = time.perf_counter() - t0
            assert first.success, "the first prewarm failed"
            stats = instance.get_run_stats(first.run_id)
            totals = run_totals(first)
            calls = fake.count()
            ledger_calls, ledger_tokens = ledger_totals(url)
            serial = calls * latency_s
            limit = math.ceil(calls / args.concurrency) * latency_s
            print(
                f"prewarm 1: {totals['partitions']} partitions x {args.sites} sites = {calls} calls "
                f"(ledger {ledger_calls}), {ledger_tokens:,} tokens, fake latency {args.latency_ms:.0f} ms, "
                f"concurrency {args.concurrency}"
            )
            run_s = stats.end_time - stats.start_time
            print(
                f"  wall {wall:.1f} s (launch included; the run itself {run_s:.1f} s) | "
                f"serial baseline {serial:.1f} s (calls x latency) | "
                f"limit {limit:.1f} s (ceil(calls / {args.concurrency}) x latency)"
            )
            speedup_met = "met" if serial / wall >= 5 else "NOT met"
            limit_met = "met" if wall <= limit + 5 else "NOT met"
            print(
                f"  speed-up vs serial {serial / wall:.1f}x (goal >= 5x: {speedup_met}); "
                f"over the limit by {wall - limit:.1f} s (goal <= 5 s: {limit_met})"
            )

            t0 = time.perf_counter()
            second = materialize_app2_prewarm(
                instance, database_url=url, llm=llm, trigger="bench", concurrency=args.concurrency
            )
            wall2 = time.perf_counter() - t0
            assert second.success, "the second prewarm failed"
            again = run_totals(second)
            calls2 = fake.count() - calls
            ledger_calls2, ledger_tokens2 = ledger_totals(url)
            tokens2 = ledger_tokens2 - ledger_tokens
            print(
                f"prewarm 2 (unchanged data): {again['partitions']} partitions in {wall2:.1f} s, "
                f"{calls2} calls (ledger +{ledger_calls2 - ledger_calls}), {tokens2} tokens, "
                f"{again['cache_hits']} cache hits (goal 0 calls, 0 tokens: "
                f"{'met' if calls2 == 0 and tokens2 == 0 else 'NOT met'})"
            )
            print(
                f"  cost: prewarm 1 {totals['cost_cny']:.4f} CNY; memoization saved prewarm 2 "
                f"{again['memo_tokens_avoided']:,} tokens, {again['memo_cost_avoided_cny']:.4f} CNY"
            )

            with otlp_sink() as sink_url:
                print("tracing overhead (same run; on = batching OTLP/HTTP export to a local sink process):")

                def forced() -> dg.ExecuteInProcessResult:
                    return materialize_app2_prewarm(
                        instance, database_url=url, llm=llm, trigger="bench", force=True, concurrency=args.concurrency
                    )

                def memoized() -> dg.ExecuteInProcessResult:
                    return materialize_app2_prewarm(
                        instance, database_url=url, llm=llm, trigger="bench", concurrency=args.concurrency
                    )

                overhead(f"forced prewarm ({calls} calls each)", forced, sink_url)
                overhead(f"memoized prewarm ({calls} hits each)", memoized, sink_url)


if __name__ == "__main__":
    main()
