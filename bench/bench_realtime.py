"""Realtime benchmark: 200 WebSocket subscribers on one API worker, answers cached by a Dagster run
in another process.

1. Push latency: a Dagster run (its own process, ``zqyy_assets.testing.realtime_runs bench``)
   caches ``--answers`` answers one transaction each, ``--interval-ms`` apart, noting the time
   right after each commit; 200 subscribers (their own process, ``bench/_ws_subscribers.py``)
   on ``/ws/ai-events/1`` note when each ``cache_updated`` arrives. Commit -> receipt, p50 and
   p99 over every (answer, subscriber). Goal: p99 < 100 ms.
2. Cached-read throughput (``GET /api/ai/cache/app3_clue/{m}``, 64 keep-alive connections)
   while such a run is caching: without subscribers (A), with the 200 subscribers connected
   and receiving (B), and without again (A', so a drift over the run is not taken for their
   cost), in the same run. Goal: B within 10 % of the mean of A and A'.

    .venv/bin/python bench/bench_realtime.py [--subscribers 200] [--answers 150] [--interval-ms 100]

Uses DATABASE_URL's server when set, else the embedded one (.pgdata/bench), in a fresh database
dropped at the end. Every wait is bounded; the API and the helper processes are stopped on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import uvloop  # noqa: E402
from _raw_http import get, load  # noqa: E402
from bench_api import MEMBERS, SITE, free_port, seed, start_api  # noqa: E402

from zqyy_assets.core import db, embedded_pg, outbox  # noqa: E402
from zqyy_assets.core.migrations import apply_migrations  # noqa: E402
from zqyy_assets.testing.fake_dashscope import FakeDashScope  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def wait_until(condition, timeout: float, what: str):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)
    return value


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    """Resident memory of a process (Linux /proc), KiB."""
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1])


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    """The next line the process prints, or "" after ``timeout`` seconds or when it exits."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return proc.stdout.readline().strip()


def start_run(url: str, answers: int, interval_ms: float, out: str) -> subprocess.Popen:
    """The Dagster run, in its own process; returns once its first answer is committed."""
    with db.connect(url) as conn:
        before = conn.execute("SELECT count(*) AS n FROM biz.ai_cache").fetchone()["n"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "zqyy_assets.testing.realtime_runs", "bench", url, str(SITE), str(answers)]
        + [str(interval_ms), out],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=open(out + ".log", "w"),  # noqa: SIM115  Dagster's event log; read it when the run fails
    )

    def started() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the Dagster run exited early; see {out}.log")
        with db.connect(url) as conn:
            return conn.execute("SELECT count(*) AS n FROM biz.ai_cache").fetchone()["n"] > before

    wait_until(started, 120, "the Dagster run's first answer")
    return proc


def reads(port: int, staff: str, args: argparse.Namespace) -> dict:
    host = f"127.0.0.1:{port}"
    requests = [
        (get(f"/api/ai/cache/app3_clue/{m}", host, staff), f'"target_id" : "{m}"'.encode())
        for m in range(1, MEMBERS + 1)
    ]
    return uvloop.run(
        load("127.0.0.1", port, requests, connections=args.connections, seconds=args.seconds, warmup=args.warmup)
    )


def baseline(url: str, port: int, staff: str, api: subprocess.Popen, args: argparse.Namespace, out: str) -> dict:
    """Reads while a Dagster run caches answers, with nobody subscribed; and the API's CPU seconds."""
    writer = start_run(url, args.answers, args.interval_ms, out)
    api_cpu = cpu_seconds(api.pid)
    result = reads(port, staff, args)
    result["api_cpu"] = cpu_seconds(api.pid) - api_cpu
    writer.wait(timeout=300)
    return result


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


def run(url: str, args: argparse.Namespace) -> None:
    staff, admin = seed(url)
    port = free_port()
    with FakeDashScope() as fake:
        api = start_api(url, port, fake, args.pool)
    tmp = Path(tempfile.mkdtemp(prefix="bench_realtime_"))
    subscribers = None
    try:
        print(
            f"realtime benchmark: 1 uvicorn worker (database pool {args.pool}); a Dagster run in its own process "
            f"caches {args.answers} answers {args.interval_ms:g} ms apart; reads at {args.connections} connections, "
            f"{args.seconds:g} s after {args.warmup:g} s warm-up; {os.cpu_count()} cores shared by all"
        )
        # 1. Baseline: reads while a run caches, nobody subscribed.
        without = baseline(url, port, staff, api, args, str(tmp / "commits0.json"))

        # 2. The subscribers connect; a probe message proves every subscription registered.
        # `since` = the site's seq now: the probe and every answer after it reach each subscriber,
        # live or replayed, however late its subscription registers.
        with db.connect(url) as conn:
            since = outbox.last_seq(conn, SITE)
        rss_before = rss_kib(api.pid)
        ws_url = f"ws://127.0.0.1:{port}/ws/ai-events/{SITE}?since={since}"
        subscribers = subprocess.Popen(
            ["nice", "-n", str(args.subscriber_nice), sys.executable, str(ROOT / "bench" / "_ws_subscribers.py")]
            + [ws_url, admin, str(args.subscribers), str(args.answers), str(tmp / "receipts.json")],
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert read_line(subscribers, 60) == "connected", "the subscribers could not connect"
        with db.transaction(url) as conn:
            outbox.publish(conn, SITE, outbox.EVENT_STATUS, {"probe": True})
        assert read_line(subscribers, 60) == "ready", "the subscribers did not all get the probe"
        rss_per_subscriber = (rss_kib(api.pid) - rss_before) / args.subscribers

        writer = start_run(url, args.answers, args.interval_ms, str(tmp / "commits.json"))
        api_cpu, subs_cpu = cpu_seconds(api.pid), cpu_seconds(subscribers.pid)
        with_subs = reads(port, staff, args)
        with_subs["api_cpu"] = cpu_seconds(api.pid) - api_cpu
        subs_cpu = cpu_seconds(subscribers.pid) - subs_cpu
        writer.wait(timeout=300)
        subscribers.wait(timeout=180)  # each exits once it has every answer: none is connected now
        # 3. The baseline again, so that a drift over the run (A, B, A') is not taken for their cost.
        again = baseline(url, port, staff, api, args, str(tmp / "commits2.json"))

        commits = {int(k): v for k, v in json.loads((tmp / "commits.json").read_text()).items()}
        got = json.loads((tmp / "receipts.json").read_text())
        delays = sorted(
            (t - commits[int(cache_id)]) * 1000 for cache_id, times in got["receipts"].items() for t in times
        )
        expected = args.answers * args.subscribers
        print(f"\n{'push: commit -> receipt':<44}{'messages':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        print(
            f"{f'{args.subscribers} subscribers x {args.answers} answers':<44}{len(delays):>10}"
            f"{percentile(delays, 0.5):>9.1f}{percentile(delays, 0.99):>9.1f}{delays[-1]:>9.1f}"
        )
        print(f"  delivered {len(delays)} of {expected}; connections closed early: {got['closed_early']}")
        print(f"  API memory per connected subscriber: {rss_per_subscriber:.0f} KiB")
        p99_ok = percentile(delays, 0.99) < 100 and len(delays) == expected
        print(f"  goal p99 < 100 ms, nothing lost: {'met' if p99_ok else 'NOT met'}")

        print(
            f"\n{'cached reads while the run caches':<44}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
            f"{'API CPU s':>11}"
        )
        for name, r in (
            ("A  without subscribers", without),
            (f"B  with {args.subscribers} subscribers", with_subs),
            ("A' without subscribers, again", again),
        ):
            print(f"{name:<44}{r['rps']:>9.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}{r['errors']:>8}{r['api_cpu']:>11.2f}")
        print(
            f"  the subscribers' own process (same cores, nice {args.subscriber_nice}) used {subs_cpu:.2f} CPU s "
            f"in the {args.warmup + args.seconds:g} s window"
        )
        ratio = with_subs["rps"] / ((without["rps"] + again["rps"]) / 2)
        print(f"  B / mean(A, A'): x{ratio:.3f}; goal within 10 %: {'met' if ratio >= 0.9 else 'NOT met'}")
    finally:
        if subscribers is not None and subscribers.poll() is None:
            subscribers.kill()
        api.terminate()
        api.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--answers", type=int, default=150)
    parser.add_argument("--interval-ms", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--pool", type=int, default=4, help="the API's database pool size")
    # The subscribers stand for remote browsers and phones; here they share the API's two cores.
    parser.add_argument("--subscriber-nice", type=int, default=0, help="nice level of the subscribers' process")
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL") or embedded_pg.start("bench")
    name = f"zqyy_bench_rt_{uuid.uuid4().hex[:8]}"
    db.ensure_database(server, name)
    url = db.with_database(server, name)
    try:
        apply_migrations(url)
        run(url, args)
    finally:
        with db.connect(db.with_database(server, "postgres"), autocommit=True) as conn:
            conn.execute(db.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db.sql.Identifier(name)))


if __name__ == "__main__":
    main()
