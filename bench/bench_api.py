"""API benchmark: one uvicorn worker on loopback, a load generator in this process.

1. Cached reads at 64 concurrent keep-alive connections (bearer auth + the newest valid
   cache row), next to a baseline measured in the same run: GET /api/health (no auth, one
   trivial database round trip). Goal: >= 1,000 reads/s with p99 < 50 ms.
2. Chat SSE: the latency the API adds per chunk. The same fake DashScope stream is read
   directly (baseline) and through POST /api/xcx/chat/stream; the added time per chunk is the
   difference of their first-to-last chunk spans divided by the chunks in between. Goal: < 5 ms.

3. Observability overhead: the cached read against API processes with metrics and tracing off,
   metrics on, and metrics and tracing on (``OVERHEAD_VARIANTS``; traces exported over OTLP/HTTP
   to ``bench/_otlp_sink.py``, a process of its own as a collector would be), alternated for
   ``--overhead-rounds`` rounds in the same run, medians compared. Goal: reads/s with metrics and
   tracing on within 10 % of off. The "metrics on" process is then scraped (``/metrics``) to check
   it counted what was sent, and the sink says how many spans arrived.

    .venv/bin/python bench/bench_api.py [--seconds 8] [--connections 64] [--overhead-rounds 2]

Uses DATABASE_URL's server when set, else the embedded one (.pgdata/bench), in a fresh
database that is dropped at the end. Every loop is bounded in time or count; the API and the
fake server are stopped on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import uvloop  # noqa: E402
from _processes import otlp_sink  # noqa: E402
from _raw_http import chunked_post, get, load, read_response, sse_chunk_times  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from api.serving import UVICORN_OPTIONS  # noqa: E402
from zqyy_assets.core import db, embedded_pg, tokens  # noqa: E402
from zqyy_assets.core.migrations import apply_migrations  # noqa: E402
from zqyy_assets.testing.fake_dashscope import FAKE_API_KEY, FakeDashScope  # noqa: E402

SITE = 1
MEMBERS = 1000


# ----------------------------------------------------------------------------------- setup


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seed(url: str) -> tuple[str, str]:
    """Cached answers for MEMBERS members of SITE, and an admin and a staff token."""
    answer = json.dumps(
        {
            "clues": [
                {
                    "category": "消费习惯",
                    "emoji": "📅",
                    "summary": "周末下午常来",
                    "detail": "近 90 天 12 次",
                    "providers": "系统",
                }
            ]
            * 3
        },
        ensure_ascii=False,
    )
    with db.transaction(url) as conn:
        conn.execute(
            """INSERT INTO biz.ai_cache (site_id, cache_type, target_id, input_hash, prompt_version, result_json,
                                         triggered_by, provider)
               SELECT %s, 'app3_clue', m::text, md5(m::text), 'v1', %s::jsonb, 'bench', 'offline'
               FROM generate_series(1, %s) m""",
            (SITE, answer, MEMBERS),
        )
        staff = tokens.issue(conn, subject="bench-staff", role="staff", site_ids=[SITE]).token
        admin = tokens.issue(conn, subject="bench-admin", role="admin", site_ids=[SITE]).token
    return staff, admin


def start_api(
    url: str, port: int, fake: FakeDashScope, pool_size: int, extra_env: dict[str, str] | None = None
) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DB_POOL_MIN_SIZE": str(pool_size),
        "DB_POOL_MAX_SIZE": str(pool_size),
        "DASHSCOPE_API_KEY": FAKE_API_KEY,
        "DASHSCOPE_BASE_URL": fake.base_url,
        "DASHSCOPE_APP_ID_APP1_CHAT": "fake-app1_chat",
        "ZQYY_LLM_PROVIDER": "dashscope",
        # The bench measures the API, not the guards' refusals: no rate limit, a large budget.
        "ZQYY_LLM_RATE_PER_MINUTE": "1000000",
        "ZQYY_LLM_RATE_BURST": "100000",
        "ZQYY_LLM_DAILY_TOKEN_LIMIT": "1000000000",
        "ZQYY_LLM_MONTHLY_TOKEN_LIMIT": "1000000000",
        **(extra_env or {}),
    }
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("uvicorn")),
            "api.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
            *UVICORN_OPTIONS,
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the API exited at start") from None
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the API did not start within 60 s")


async def bench_sse(port: int, fake: FakeDashScope, staff: str, *, chunks: int, streams: int, delay_ms: float) -> dict:
    host = f"127.0.0.1:{port}"
    # Exactly four characters a chunk, so the fake sends `chunks` non-empty pieces.
    answer = ("台球厅本周营收稳中有升，包厢与斯诺克区贡献最大。" * chunks)[: chunks * 4]
    fake.chunk_delay_ms = delay_ms
    fake.script("app1_chat", chunks=chunks, answer=answer, tokens=(200, 400))
    direct_body = {"input": {"prompt": "本周营收如何？"}, "parameters": {"incremental_output": True}}
    direct = chunked_post(
        "/api/v1/apps/fake-app1_chat/completion",
        f"127.0.0.1:{fake.port}",
        direct_body,
        {"Authorization": f"Bearer {FAKE_API_KEY}", "X-DashScope-SSE": "enable"},
    )
    spans_direct, spans_api, firsts_direct, firsts_api = [], [], [], []
    for n in range(streams):
        times = await sse_chunk_times("127.0.0.1", fake.port, direct, b"id:")
        assert len(times) == chunks, (len(times), chunks)
        firsts_direct.append(times[0])
        spans_direct.append(times[-1] - times[0])
        open_chat = get(f"/api/xcx/chat/messages?contextType=bench&contextId=s{n}", host, staff)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(open_chat)
        _, body = await read_response(reader)
        writer.close()
        chat_id = json.loads(body)["chatId"]
        request = chunked_post(
            "/api/xcx/chat/stream",
            host,
            {"chatId": chat_id, "content": "本周营收如何？"},
            {"Authorization": f"Bearer {staff}"},
        )
        times = await sse_chunk_times("127.0.0.1", port, request, b"event: message")
        assert len(times) == chunks, (len(times), chunks)
        firsts_api.append(times[0])
        spans_api.append(times[-1] - times[0])
    med = statistics.median
    return {
        "direct_first_ms": med(firsts_direct) * 1000,
        "api_first_ms": med(firsts_api) * 1000,
        "direct_span_ms": med(spans_direct) * 1000,
        "api_span_ms": med(spans_api) * 1000,
        "added_per_chunk_ms": (med(spans_api) - med(spans_direct)) * 1000 / (chunks - 1),
    }


async def main_async(args: argparse.Namespace, port: int, fake: FakeDashScope, staff: str) -> None:
    host = f"127.0.0.1:{port}"
    print(
        f"API benchmark: 1 uvicorn worker (database pool {args.pool}) on loopback, "
        f"{args.connections} keep-alive connections, {args.seconds:g} s per scenario after {args.warmup:g} s "
        f"warm-up, {os.cpu_count()} cores shared with the load generator"
    )
    health = await load(
        "127.0.0.1",
        port,
        [(get("/api/health", host), b'"status":"ok"')],
        connections=args.connections,
        seconds=args.seconds,
        warmup=args.warmup,
    )
    cached = await cached_reads(port, staff, args)
    print(f"{'scenario':<44}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for name, r in (
        ("baseline: GET /api/health (1 DB round trip)", health),
        ("cached read: GET /api/ai/cache/app3_clue/{m}", cached),
    ):
        print(f"{name:<44}{r['rps']:>9.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}{r['errors']:>8}")
    print(
        f"cached read / baseline: throughput x{cached['rps'] / health['rps']:.2f}, "
        f"p99 x{cached['p99'] / health['p99']:.2f}"
    )
    ok = cached["rps"] >= 1000 and cached["p99"] < 50 and cached["errors"] == 0
    print(f"goal >= 1,000 reads/s with p99 < 50 ms: {'met' if ok else 'NOT met'}")

    if args.reads_only:
        return
    print()
    print(
        f"{'chat SSE (median of ' + str(args.streams) + ' streams)':<44}"
        f"{'first ms':>10}{'span ms':>10}{'added/chunk ms':>16}"
    )
    for chunks, delay in ((200, 0.0), (50, 10.0)):
        r = await bench_sse(port, fake, staff, chunks=chunks, streams=args.streams, delay_ms=delay)
        label = f"{chunks} chunks, {delay:g} ms apart"
        print(
            f"{'direct from fake (baseline), ' + label:<44}"
            f"{r['direct_first_ms']:>10.1f}{r['direct_span_ms']:>10.1f}{'':>16}"
        )
        print(
            f"{'through the API, ' + label:<44}{r['api_first_ms']:>10.1f}{r['api_span_ms']:>10.1f}"
            f"{r['added_per_chunk_ms']:>16.3f}"
        )
        print(
            f"  API span / baseline span: x{r['api_span_ms'] / max(r['direct_span_ms'], 1e-6):.2f}; "
            f"goal < 5 ms added a chunk: {'met' if r['added_per_chunk_ms'] < 5 else 'NOT met'}"
        )


# The API as served with each kind of observability off or on (the same process options otherwise).
OVERHEAD_VARIANTS: dict[str, dict[str, str]] = {
    "metrics and tracing off": {"METRICS_ENABLED": "false"},
    "metrics on": {"METRICS_ENABLED": "true"},
    "metrics and tracing on": {"METRICS_ENABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "{sink}"},
}
CACHE_ROUTE = "/api/ai/cache/{app_type}/{target_id}"


async def cached_reads(port: int, staff: str, args: argparse.Namespace) -> dict:
    host = f"127.0.0.1:{port}"
    # Each answer must be the member's own (the body as Postgres's json_build_object writes it).
    reads = [
        (get(f"/api/ai/cache/app3_clue/{m}", host, staff), f'"target_id" : "{m}"'.encode())
        for m in range(1, MEMBERS + 1)
    ]
    return await load("127.0.0.1", port, reads, connections=args.connections, seconds=args.seconds, warmup=args.warmup)


def counted_reads(port: int, admin: str) -> float:
    """The cached reads the API's /metrics counted (status 200 on the latest-answer route)."""
    body = uvloop.run(_fetch(port, get("/metrics", f"127.0.0.1:{port}", admin)))
    wanted = {"method": "GET", "route": CACHE_ROUTE, "status": "200"}
    return sum(
        s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == "zqyy_http_request_duration_seconds_count" and s.labels == wanted
    )


async def _fetch(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    _, body = await read_response(reader)
    writer.close()
    return body


def overhead(args: argparse.Namespace, url: str, fake: FakeDashScope, staff: str, admin: str) -> None:
    """Cached reads with each variant, alternated round by round; medians against the first variant."""
    results: dict[str, list[dict]] = {name: [] for name in OVERHEAD_VARIANTS}
    counted: float | None = None
    with otlp_sink() as sink:
        for _ in range(args.overhead_rounds):
            for name, env in OVERHEAD_VARIANTS.items():
                port = free_port()
                proc = start_api(url, port, fake, args.pool, {k: v.format(sink=sink) for k, v in env.items()})
                try:
                    results[name].append(uvloop.run(cached_reads(port, staff, args)))
                    if name == "metrics on":
                        counted = counted_reads(port, admin)
                finally:
                    proc.terminate()  # a clean stop flushes the spans still batched
                    proc.wait(timeout=20)
        with urllib.request.urlopen(f"{sink}/count", timeout=10) as answer:
            spans = json.loads(answer.read())["spans"]
    med = statistics.median
    print()
    print(f"observability overhead: cached reads, median of {args.overhead_rounds} alternated round(s)")
    print(f"{'variant':<44}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    base = med(r["rps"] for r in next(iter(results.values())))
    for name, runs in results.items():
        rps, p50, p99 = med(r["rps"] for r in runs), med(r["p50"] for r in runs), med(r["p99"] for r in runs)
        errors = sum(r["errors"] for r in runs)
        rounds = " ".join(f"{r['rps']:.0f}" for r in runs)
        print(f"{name:<44}{rps:>9.0f}{p50:>9.1f}{p99:>9.1f}{errors:>8}   x{rps / base:.3f} of the first ({rounds})")
    both = med(r["rps"] for r in results["metrics and tracing on"]) / base
    verdict = "met" if both >= 0.9 else "NOT met"
    print(f"goal: reads/s with metrics and tracing on within 10 % of off: x{both:.3f}, {verdict}")
    if counted is not None:
        print(f"/metrics of the last 'metrics on' process counted {counted:.0f} cached reads (warm-up included)")
    print(f"the OTLP sink received {spans} spans from the 'metrics and tracing on' processes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--streams", type=int, default=10)
    # On two cores every extra Postgres backend competes with the API for CPU: a small pool wins.
    parser.add_argument("--pool", type=int, default=4, help="the API's database pool size")
    parser.add_argument("--reads-only", action="store_true", help="skip the chat SSE part")
    parser.add_argument("--overhead-rounds", type=int, default=2, help="0: skip the observability overhead comparison")
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL") or embedded_pg.start("bench")
    name = f"zqyy_bench_api_{uuid.uuid4().hex[:8]}"
    db.ensure_database(server, name)
    url = db.with_database(server, name)
    proc = None
    try:
        apply_migrations(url)
        staff, admin = seed(url)
        with FakeDashScope() as fake:
            port = free_port()
            proc = start_api(url, port, fake, args.pool)
            uvloop.run(main_async(args, port, fake, staff))
            proc.terminate()
            proc.wait(timeout=20)
            proc = None
            if args.overhead_rounds > 0:
                overhead(args, url, fake, staff, admin)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        with db.connect(db.with_database(server, "postgres"), autocommit=True) as conn:
            conn.execute(db.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db.sql.Identifier(name)))


if __name__ == "__main__":
    main()
