"""Benchmark: a simulated chain's app2 prewarm, sharded across run processes, at the provider's limit.

Generates ``--sites`` demo venues (``--days`` each), materializes DWS, starts the fake DashScope
in its own process with a provider limit (``--qps``: above it, 429 ``Throttling.RateQuota``)
and a latency (``--latency-ms``), then runs the prewarm as one process per shard
(``--shard-size``; ``bench/_prewarm_shard.py``), all started together, all holding the one
Postgres-backed cap on calls in flight (``core/llm/inflight.py``, AIMD). Prints the wall time
against the floor (calls / qps), the share of requests throttled, the workers' CPU-seconds per
call and the peak RSS of the busiest worker, ending with one line::

    prewarm: wall 731.0 s, floor 720.0 s, ratio 1.02, throttled 0.8 %, cpu 2.1 ms/call, peak rss 812 MB

Goals (at 1,000 sites, --qps 100, --latency-ms 1000): wall <= 1.25 x floor, throttled <= 2 %,
peak RSS <= 1.5 GB.

    .venv/bin/python bench/bench_scale.py --sites 50 --qps 100 --latency-ms 500
    .venv/bin/python bench/bench_scale.py --sites 1000 --days 60 --qps 100 --latency-ms 1000

The database is created on the embedded server (``.pgdata/bench``, or DATABASE_URL's server)
and dropped afterwards; the fake server and the workers are stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _db import postgres_dagster_instance, scratch_database  # noqa: E402
from _processes import serving  # noqa: E402

from zqyy_assets.core import db  # noqa: E402
from zqyy_assets.core.apps import APP_NAMES  # noqa: E402
from zqyy_assets.core.prewarm_shards import shard_sites  # noqa: E402
from zqyy_assets.defs.resources import VenueCalendarResource  # noqa: E402
from zqyy_assets.testing.fake_dashscope import FAKE_API_KEY  # noqa: E402
from zqyy_assets.tools.demo_venue import generate_demo_venue  # noqa: E402
from zqyy_assets.tools.dws_refresh import materialize_dws, ods_date_range  # noqa: E402


def quota_stats(base_url: str) -> dict[str, float]:
    root = base_url.removesuffix("/api/v1")
    with urllib.request.urlopen(f"{root}/_fake/quota", timeout=10) as response:
        return json.loads(response.read())


def run_shards(url: str, llm: dict, shards: list[list[int]], concurrency: int) -> tuple[float, list[dict]]:
    """Every shard in its own process, released together; (wall, per worker: outcome and rusage)."""
    logs = tempfile.TemporaryDirectory(prefix="bench_scale_")
    procs = []
    for index, sites in enumerate(shards):
        job = {"database_url": url, "llm": llm, "sites": sites, "concurrency": concurrency}
        err = open(Path(logs.name) / f"shard{index}.log", "w")  # noqa: SIM115 (closed below)
        procs.append(
            (
                subprocess.Popen(
                    [sys.executable, str(ROOT / "bench" / "_prewarm_shard.py"), json.dumps(job)],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                ),
                err,
            )
        )
    try:
        for proc, _ in procs:
            line = proc.stdout.readline().strip() if proc.stdout else ""
            if line != "ready":
                raise RuntimeError(f"a shard worker did not start: {line!r}")
        t0 = time.perf_counter()
        for proc, _ in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc, err in procs:
            out = proc.stdout.readline() if proc.stdout else ""
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            err.close()
            outcome = json.loads(out) if out.strip() else {"success": False}
            outcome.update(cpu_s=usage.ru_utime + usage.ru_stime, rss_mb=usage.ru_maxrss / 1024)
            if not outcome["success"]:
                outcome["log_tail"] = (Path(err.name).read_text(encoding="utf-8", errors="replace"))[-2000:]
            results.append(outcome)
        wall = time.perf_counter() - t0
        return wall, results
    finally:
        for proc, err in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            err.close()
        logs.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--qps", type=float, default=100.0)
    parser.add_argument("--latency-ms", type=float, default=1000.0)
    parser.add_argument("--shard-size", type=int, default=None, help="default: the sites in 4 shards")
    parser.add_argument("--concurrency", type=int, default=64, help="threads per shard process")
    parser.add_argument("--ceiling", type=int, default=256, help="ZQYY_LLM_INFLIGHT_CEILING")
    args = parser.parse_args()
    shard_size = args.shard_size or math.ceil(args.sites / 4)

    with scratch_database("zqyy_bench_scale") as url:
        t0 = time.perf_counter()
        generate_demo_venue(
            url, sites=args.sites, days=args.days, seed=args.seed, end_date=date.today() - timedelta(days=1)
        )
        generated = time.perf_counter() - t0
        calendar = VenueCalendarResource()
        span = ods_date_range(url, calendar)
        with postgres_dagster_instance(url) as instance:
            t1 = time.perf_counter()
            assert materialize_dws(instance, url, span.first, span.last, calendar).success, "DWS did not materialize"
            dws_s = time.perf_counter() - t1
        print(f"setup: {args.sites} sites x {args.days} days generated in {generated:.1f} s, DWS in {dws_s:.1f} s")

        command = [
            "-m",
            "zqyy_assets.testing.fake_dashscope",
            "--port",
            "0",
            "--latency-ms",
            str(args.latency_ms),
            "--qps",
            str(args.qps),
        ]
        with serving(command, r"(http://\S+/api/v1)", "the fake server") as base_url:
            llm = {
                "database_url": url,
                "provider": "dashscope",
                "api_key": FAKE_API_KEY,
                "base_url": base_url,
                "app_ids": {name: f"fake-{name}" for name in APP_NAMES},
                # the other guards are not what is measured: wide enough never to refuse or wait
                "rate_per_minute": 6_000_000.0,
                "rate_burst": 100_000,
                "daily_token_limit": 10_000_000_000,
                "monthly_token_limit": 10_000_000_000,
                "request_timeout_seconds": 60.0,
                "inflight_ceiling": args.ceiling,
            }
            with db.connect(url) as conn:
                sites = [r["site_id"] for r in conn.execute("SELECT site_id FROM ods.sites WHERE is_active")]
            shards = [list(s.site_ids) for s in shard_sites(sites, shard_size)]
            print(
                f"prewarm: {len(sites)} sites x 72 = {len(sites) * 72} calls in {len(shards)} shard process(es) "
                f"of <= {shard_size} sites, {args.concurrency} threads each; provider limit {args.qps:g}/s, "
                f"latency {args.latency_ms:.0f} ms"
            )
            wall, results = run_shards(url, llm, shards, args.concurrency)
            quota = quota_stats(base_url)
        with db.connect(url) as conn:
            cap = conn.execute("SELECT cap, cuts, throttles FROM biz.ai_inflight_cap").fetchone()
            answers = conn.execute("SELECT count(*) AS n FROM biz.ai_cache WHERE cache_type LIKE 'app2%%'").fetchone()

    failed = [r for r in results if not r["success"]]
    for r in failed:
        print(f"  a shard failed: {r.get('log_tail', '')}")
    calls = len(sites) * 72
    floor = calls / args.qps
    requests = quota["admitted"] + quota["throttled"]
    throttled_pct = 100 * quota["throttled"] / requests if requests else 0.0
    cpu_ms = 1000 * sum(r["cpu_s"] for r in results) / max(calls, 1)
    peak_rss = max(r["rss_mb"] for r in results)
    walls = ", ".join(f"{r.get('wall', 0):.0f}" for r in results)
    print(
        f"  {answers['n']} answers cached; {quota['admitted']} requests answered, {quota['throttled']} throttled; "
        f"in flight at the provider at most {quota['peak_in_flight']}; cap at the end {math.floor(cap['cap'])} "
        f"after {cap['cuts']} cut(s); shards' walls {walls} s"
    )
    goals = (wall <= 1.25 * floor, throttled_pct <= 2.0, peak_rss <= 1536, not failed)
    print(f"  goals (wall <= 1.25 x floor, throttled <= 2 %, peak rss <= 1.5 GB, no failure): {goals}")
    print(
        f"prewarm: wall {wall:.1f} s, floor {floor:.1f} s, ratio {wall / floor:.2f}, throttled {throttled_pct:.1f} %, "
        f"cpu {cpu_ms:.1f} ms/call, peak rss {peak_rss:.0f} MB"
    )


if __name__ == "__main__":
    main()
