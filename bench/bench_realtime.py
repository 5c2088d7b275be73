"""Realtime benchmark: 200 WebSocket subscribers on one API worker, answers cached by a Dagster run
in another process.

A Dagster run (its own process, ``zqyy_assets.testing.realtime_runs bench``) caches answers one
transaction each, ``--interval-ms`` apart, for the whole benchmark, noting the time right after
each commit. Meanwhile the cached-read load (``GET /api/ai/cache/app3_clue/{m}``, 64 keep-alive
connections) runs in alternating windows: A without subscribers, B with 200 subscribers
(their own process, ``bench/_ws_subscribers.py``) connected to ``/ws/ai-events/1`` and
receiving every ``cache_updated``: A B A B ... A, ``--windows`` B windows. Alternating, and
taking medians, keeps a drift of the shared machine over the run from being taken for the
subscribers' cost (a single A-B-A' run moved by up to 30 % between A and A').

1. Push latency: commit -> receipt over every (answer committed during a B window, subscriber),
   p50 / p99; every such answer must reach every subscriber. Goal: p99 < 100 ms.
2. Cached-read throughput: median of the B windows against the median of the A windows.
   Goal: within 10 %.
3. The API's CPU per pushed frame (its CPU seconds in B minus A, per frame) and its memory per
   connected subscriber, for the record.

    .venv/bin/python bench/bench_realtime.py [--subscribers 200] [--windows 3] [--interval-ms 100]

Uses DATABASE_URL's server when set, else the embedded one (.pgdata/bench), in a fresh database
dropped at the end. Every wait is bounded; the API and the helper processes are stopped on exit.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import statistics
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


def postgres_cpu_seconds() -> float:
    """CPU time of every Postgres process on the machine (the bench runs on a quiet machine)."""
    total = 0.0
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "postgres":
                total += cpu_seconds(int(comm.parent.name))
        except OSError:
            continue  # ended meanwhile
    return total


def machine_busy_seconds() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine so far, every core (Linux /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK"), sum(values) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(api_pid: int, subscribers_pid: int | None) -> dict[str, float]:
    """CPU seconds so far of each part sharing the cores, to split a window's CPU between them."""
    busy, every = machine_busy_seconds()
    return {
        "api": cpu_seconds(api_pid),
        "load": time.process_time(),  # this process: the read load generator
        "subscribers": cpu_seconds(subscribers_pid) if subscribers_pid else 0.0,
        "postgres": postgres_cpu_seconds(),
        "busy": busy,
        "all": every,
    }


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


def start_run(url: str, interval_ms: float, out: Path) -> subprocess.Popen:
    """The Dagster run, in its own process, caching until stopped; returns once an answer is committed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "zqyy_assets.testing.realtime_runs", "bench", url, str(SITE), "1000000"]
        + [str(interval_ms), str(out)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=open(f"{out}.log", "w"),  # noqa: SIM115  Dagster's event log; read it when the run fails
    )

    def started() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"the Dagster run exited early; see {out}.log")
        return out.exists() and out.stat().st_size > 0

    wait_until(started, 120, "the Dagster run's first answer")
    return proc


def commits(path: Path) -> dict[int, float]:
    """Commit time of every answer the run has cached so far (complete lines only)."""
    lines = path.read_text().splitlines()
    return {cache_id: at for cache_id, at in (json.loads(line) for line in lines if line.endswith("]"))}


def reads(port: int, staff: str, args: argparse.Namespace) -> dict:
    host = f"127.0.0.1:{port}"
    requests = [
        (get(f"/api/ai/cache/app3_clue/{m}", host, staff), f'"target_id" : "{m}"'.encode())
        for m in range(1, MEMBERS + 1)
    ]
    return uvloop.run(
        load("127.0.0.1", port, requests, connections=args.connections, seconds=args.seconds, warmup=args.warmup)
    )


def window(
    port: int, staff: str, api: subprocess.Popen, args: argparse.Namespace, subscribers_pid: int | None = None
) -> dict:
    """One read window, with the CPU seconds each part used and the wall time it covered."""
    began, before = time.time(), cpu_snapshot(api.pid, subscribers_pid)
    result = reads(port, staff, args)
    after = cpu_snapshot(api.pid, subscribers_pid)
    result["cpu"] = {part: after[part] - before[part] for part in before}
    result["api_cpu"] = result["cpu"]["api"]
    result["began"], result["ended"] = began, time.time()
    return result


def idle_window(api: subprocess.Popen, args: argparse.Namespace) -> dict:
    """A window with no reads: what the API spends on the pushes alone."""
    began, api_cpu = time.time(), cpu_seconds(api.pid)
    time.sleep(args.warmup + args.seconds)  # the measured span itself, not a wait for a condition
    return {"api_cpu": cpu_seconds(api.pid) - api_cpu, "began": began, "ended": time.time()}


def subscribed_window(url, port, staff, admin, api, args, tmp: Path, i: int, with_reads: bool = True):  # noqa: ANN001, ANN201
    """A B window: the subscribers connect (ready = each got a probe published now), the reads run,
    the answers committed meanwhile reach them; then they disconnect. Returns the window's result,
    the answers committed while every subscription was live, the receipts, and KiB per subscriber."""
    rss_before = rss_kib(api.pid)
    with db.connect(url) as conn:
        since = outbox.last_seq(conn, SITE)
    out = tmp / f"receipts{i}.json"
    subscribers = subprocess.Popen(
        ["nice", "-n", str(args.subscriber_nice), sys.executable, str(ROOT / "bench" / "_ws_subscribers.py")]
        + [f"ws://127.0.0.1:{port}/ws/ai-events/{SITE}?since={since}", admin, str(args.subscribers), str(out)],
        cwd=ROOT,
        env=ENV,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert read_line(subscribers, 60) == "connected", "the subscribers could not connect"
        with db.transaction(url) as conn:
            outbox.publish(conn, SITE, outbox.EVENT_STATUS, {"probe": True})
        assert read_line(subscribers, 60) == "ready", "the subscribers did not all get the probe"
        ready = time.time()
        per_subscriber = (rss_kib(api.pid) - rss_before) / args.subscribers
        result = window(port, staff, api, args, subscribers.pid) if with_reads else idle_window(api, args)
        # Let the answers committed up to the window's end arrive: wait for a later commit, plus margin.
        wait_until(lambda: max(commits(tmp / "commits.jsonl").values()) > result["ended"] + 0.5, 30, "a later commit")
        assert subscribers.stdin is not None
        subscribers.stdin.close()
        subscribers.wait(timeout=60)
    finally:
        if subscribers.poll() is None:
            subscribers.kill()
    live = {cache_id: at for cache_id, at in commits(tmp / "commits.jsonl").items() if ready < at <= result["ended"]}
    return result, live, json.loads(out.read_text()), per_subscriber


def percentile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))]


def run(url: str, args: argparse.Namespace) -> None:
    staff, admin = seed(url)
    port = free_port()
    with FakeDashScope() as fake:
        api = start_api(url, port, fake, args.pool)
    tmp = Path(tempfile.mkdtemp(prefix="bench_realtime_"))
    writer = None
    try:
        print(
            f"realtime benchmark: 1 uvicorn worker (database pool {args.pool}); a Dagster run in its own process "
            f"caches an answer every {args.interval_ms:g} ms throughout; reads at {args.connections} connections, "
            f"windows of {args.seconds:g} s after {args.warmup:g} s warm-up, A B ... A with {args.windows} B; "
            f"{args.subscribers} subscribers; {os.cpu_count()} cores shared by all"
        )
        writer = start_run(url, args.interval_ms, tmp / "commits.jsonl")
        a_windows, b_windows, delays = [], [], []
        expected = delivered = closed_early = 0
        memory = []
        for i in range(args.windows):
            a_windows.append(window(port, staff, api, args))
            b, live, got, per_subscriber = subscribed_window(url, port, staff, admin, api, args, tmp, i)
            b_windows.append(b)
            memory.append(per_subscriber)
            closed_early += got["closed_early"]
            expected += len(live) * args.subscribers
            for cache_id, committed in live.items():
                times = got["receipts"].get(str(cache_id), [])
                delivered += len(times)
                delays.extend((t - committed) * 1000 for t in times)
        a_windows.append(window(port, staff, api, args))
        pushes, live, got, _ = subscribed_window(url, port, staff, admin, api, args, tmp, args.windows, False)
        frames = sum(len(got["receipts"].get(str(cache_id), [])) for cache_id in live)

        delays.sort()
        print(f"\n{'push: commit -> receipt (B windows)':<44}{'messages':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
        if delays:
            print(
                f"{f'{args.subscribers} subscribers':<44}{len(delays):>10}"
                f"{percentile(delays, 0.5):>9.1f}{percentile(delays, 0.99):>9.1f}{delays[-1]:>9.1f}"
            )
        else:
            print(f"{f'{args.subscribers} subscribers':<44}{0:>10}  (no answer committed inside a B window)")
        print(f"  delivered {delivered} of {expected}; connections closed early: {closed_early}")
        # The first B window's: later ones reuse what the first allocated, so their RSS barely moves.
        print(f"  API memory per connected subscriber: {memory[0]:.0f} KiB")
        print(
            f"  API CPU per pushed frame, pushes alone (no reads): {pushes['api_cpu'] / max(frames, 1) * 1e6:.1f} µs "
            f"({frames} frames in {pushes['ended'] - pushes['began']:.1f} s)"
        )
        p99_ok = bool(delays) and percentile(delays, 0.99) < 100 and delivered == expected and closed_early == 0
        print(f"  goal p99 < 100 ms, nothing lost: {'met' if p99_ok else 'NOT met'}")

        heading = f"{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'API CPU s':>11}"
        print(f"\n{'cached reads while the run caches':<44}{heading}")
        alternating = [w for pair in zip(a_windows, [*b_windows, None], strict=True) for w in pair if w is not None]
        for n, r in enumerate(alternating):
            name = f"{'A' if n % 2 == 0 else 'B'}{n // 2 + 1} {'without' if n % 2 == 0 else 'with'} subscribers"
            print(f"{name:<44}{r['rps']:>9.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}{r['errors']:>8}{r['api_cpu']:>11.2f}")
        print(
            f"\n{'where the CPU went, per window (CPU s)':<44}{'API':>7}{'µs/read':>9}{'load':>7}{'subscr':>8}"
            f"{'pg':>6}{'other':>7}{'idle':>6}"
        )
        for n, r in enumerate(alternating):
            cpu = r["cpu"]
            other = cpu["busy"] - cpu["api"] - cpu["load"] - cpu["subscribers"] - cpu["postgres"]
            name = f"{'A' if n % 2 == 0 else 'B'}{n // 2 + 1}"
            per_read = cpu["api"] / (r["rps"] * (r["ended"] - r["began"])) * 1e6  # warm-up reads included
            print(
                f"{name:<44}{cpu['api']:>7.2f}{per_read:>9.1f}{cpu['load']:>7.2f}"
                f"{cpu['subscribers']:>8.2f}{cpu['postgres']:>6.2f}{other:>7.2f}{cpu['all'] - cpu['busy']:>6.2f}"
            )
        a_median = statistics.median(r["rps"] for r in a_windows)
        b_median = statistics.median(r["rps"] for r in b_windows)
        ratio = b_median / a_median
        print(
            f"  median B / median A: {b_median:.0f} / {a_median:.0f} = x{ratio:.3f}; goal within 10 %: "
            f"{'met' if ratio >= 0.9 else 'NOT met'}"
        )
    finally:
        if writer is not None:
            writer.terminate()
            writer.wait(timeout=30)
        api.terminate()
        api.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--windows", type=int, default=3, help="B windows (A windows: one more)")
    parser.add_argument("--interval-ms", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=1.0)
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
