"""Benchmark: the inbox sensor and event -> answers with 1,000,000 `members` partition keys.

Setup as ``bench_events.py`` (its helpers): a scratch database with a demo venue (DWS computed),
a Dagster instance on Postgres in a temp DAGSTER_HOME (the project's dagster.yaml), the fake
DashScope server at ``--latency-ms`` and ``dagster-daemon run`` as a subprocess. Each figure is
measured twice in the same run: with a small ``members`` key set (~2,000 keys, the baseline) and
after growing it to ``--keys`` with the instance's bulk add (``add_dynamic_partitions`` in
batches of 10,000, timed, the daemon running).

(a) the inbox sensor's tick: evaluated in process as the daemon does it (run requests resolved
    against the definitions), ``--ticks`` times on ``--events`` new consumption events each (half
    on existing keys, half on new members), on an inbox database of its own so the daemon never
    sees those events: p50 / p95 against the goal (p95 <= 100 ms). Also printed: what a tick
    with events cost before this change, loading every key.
(b) event -> answers through the daemon, ``--single`` consumption events one at a time per phase,
    half for members whose key exists, half for new members (the sensor adds their key): p50
    against the goal (<= 8 s), and the daemon's own inbox-sensor ticks for those events.
(c) a burst of ``--burst`` new members at once per phase (one range run per chain): time until
    all are answered. No goal; Dagster reads every key to resolve a range, so also printed: one
    such read from Dagster's own storage and through the shipped storage's key cache.

    .venv/bin/python bench/bench_members.py [--keys 1000000] [--single 10] [--ticks 20] [--events 100]
        [--burst 20] [--latency-ms 200]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dagster as dg  # noqa: E402
from _db import scratch_database  # noqa: E402
from bench_events import CHAIN, SENSOR_LOOP_S, UNLIMITED_LLM, _insert, _pct, _prepare_venue, _start_fake, _wait_answered  # noqa: E402
from dagster._core.scheduler.instigation import InstigatorType, TickStatus  # noqa: E402
from dagster_postgres import PostgresEventLogStorage  # noqa: E402

from zqyy_assets.core import db, inbox  # noqa: E402
from zqyy_assets.core.vocabulary import MEMBERS  # noqa: E402
from zqyy_assets.defs.events.sensors import ai_events_sensor  # noqa: E402
from zqyy_assets.defs.resources import PostgresResource  # noqa: E402
from zqyy_assets.testing.daemon_harness import daemon_harness  # noqa: E402
from zqyy_assets.testing.fake_dashscope import demo_env  # noqa: E402

BATCH = 10_000  # keys per add_dynamic_partitions call
SYNTHETIC_MEMBER = 10_000_000  # synthetic members' ids start here (sites 2..1000): no clash with the venue's
SMALL = 2_000  # synthetic keys present for the same-run baseline at a small key set


def _synthetic_key(i: int) -> str:
    return f"{2 + i % 999}-{SYNTHETIC_MEMBER + i}"


def _member_of(key: str) -> tuple[int, int]:
    site, member = key.split("-")
    return int(site), int(member)


def _grow(instance: dg.DagsterInstance, first: int, last: int) -> float:
    """Add synthetic keys [first, last) in batches; seconds taken."""
    started = time.monotonic()
    for start in range(first, last, BATCH):
        instance.add_dynamic_partitions(MEMBERS, [_synthetic_key(i) for i in range(start, min(last, start + BATCH))])
        if (start - first + BATCH) % 200_000 == 0:
            print(f"    {start - first + BATCH:,} keys added ({time.monotonic() - started:.0f} s)", flush=True)
    return time.monotonic() - started


def _daemon_sensor_ticks(instance: dg.DagsterInstance, since: float) -> list[float]:
    """Durations (s) of the daemon's inbox-sensor ticks since ``since`` that requested runs."""
    states = [
        s
        for s in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
        if s.instigator_name == ai_events_sensor.name
    ]
    if not states:
        return []
    ticks = instance.get_ticks(states[0].instigator_origin_id, states[0].selector_id, after=since, limit=10_000)
    return [t.end_timestamp - t.timestamp for t in ticks if t.status == TickStatus.SUCCESS and t.end_timestamp]


class Ticks:
    """The inbox sensor evaluated in process as the daemon does it (run requests resolved against
    the definitions), on an inbox database of its own, so the running daemon never sees these
    events; the Dagster instance (and its keys) is the daemon's."""

    def __init__(self, url: str, instance: dg.DagsterInstance, defs: dg.Definitions, events: int) -> None:
        self.postgres = PostgresResource(database_url=url)
        self.url, self.instance, self.defs, self.events = url, instance, defs, events
        self.cursor: str | None = None
        self.fresh = SYNTHETIC_MEMBER * 2  # members with no key yet
        self.cpu: list[float] = []  # this process's CPU seconds per evaluation (Postgres's not included)

    def measure(self, ticks: int, existing_pool: range, seed: int) -> tuple[list[float], list[int]]:
        """``ticks`` ticks of ``events`` events: half on keys drawn from ``existing_pool`` (each
        once: no same-day duplicates), half on new members. Seconds per evaluation, runs per tick."""
        half = self.events // 2
        drawn = random.Random(seed).sample(existing_pool, ticks * half)
        timings, runs = [], []
        self.cpu = []
        for t in range(ticks):
            members = [_member_of(_synthetic_key(i)) for i in drawn[t * half : (t + 1) * half]]
            members += [(2 + m % 999, m) for m in range(self.fresh, self.fresh + self.events - half)]
            self.fresh += self.events - half
            with db.transaction(self.url) as conn:
                for site_id, member_id in members:
                    inbox.insert_event(conn, event_type="consumption", site_id=site_id, member_id=member_id)
            with dg.build_sensor_context(
                instance=self.instance,
                instance_ref=self.instance.get_ref(),
                cursor=self.cursor,
                definitions=self.defs,
                resources={"postgres": self.postgres},
            ) as context:
                started, cpu = time.perf_counter(), time.process_time()
                result = ai_events_sensor.evaluate_tick(context)
                timings.append(time.perf_counter() - started)
                self.cpu.append(time.process_time() - cpu)
            runs.append(len(result.run_requests))
            for request in result.dynamic_partitions_requests:  # as the daemon does before the next tick
                self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            self.cursor = result.cursor
        return timings, runs


def _singles(url: str, members: list[int], known: set[int], seed: int) -> dict[str, list[float]]:
    """One consumption event at a time (daemon running): seconds to its 3 answers, by key kind."""
    phase = random.Random(seed)  # seeded: the same arrival pattern in every run of the benchmark
    took: dict[str, list[float]] = {"existing key": [], "new key": []}
    for member in members:
        time.sleep(0.5 + phase.uniform(0, SENSOR_LOOP_S))  # land anywhere in the sensor loop (see bench_events)
        ((event_id, inserted),) = _insert(url, [member])
        latency = _wait_answered(url, [member], inserted, 120)
        if latency is None:
            raise SystemExit(f"event {event_id} not answered in 120 s")
        took["existing key" if member in known else "new key"].append(latency)
    return took


def _burst(url: str, members: list[int]) -> float:
    """Seconds from inserting one event per member (one transaction) to every answer cached."""
    if not members:
        return 0.0
    inserted = _insert(url, members)
    took = _wait_answered(url, members, inserted[0][1], 600)
    if took is None:
        raise SystemExit(f"a burst of {len(members)} not answered in 600 s")
    return took


def _ms(values: list[float]) -> str:
    return f"p50 {_pct(values, 0.5) * 1000:.0f} ms, p95 {_pct(values, 0.95) * 1000:.0f} ms"


def _report_ticks(label: str, keys: int, timings: list[float], runs: list[int], cpu: list[float], events: int) -> None:
    print(
        f"    {label}: {keys:,} keys, {len(timings)} ticks of {events} new events "
        f"({statistics.median(runs):.0f} run requests a tick): {_ms(timings)}; "
        f"CPU of the evaluating process {statistics.median(cpu) * 1000:.0f} ms a tick (median)"
    )


def _report_singles(label: str, keys: int, took: dict[str, list[float]], daemon_ticks: list[float]) -> float:
    every = [t for ts in took.values() for t in ts]
    kinds = "; ".join(f"{kind} p50 {statistics.median(ts):.2f} s ({len(ts)})" for kind, ts in took.items() if ts)
    daemon = f"; the daemon's sensor ticks with an event: {_ms(daemon_ticks)}" if daemon_ticks else ""
    print(
        f"    {label}: {keys:,} keys, {len(every)} single events: p50 {_pct(every, 0.5):.2f} s, "
        f"p95 {_pct(every, 0.95):.2f} s ({kinds}){daemon}"
    )
    return _pct(every, 0.5)


def _run(args, url: str, ticks_url: str, harness, instance: dg.DagsterInstance, members: list[int]) -> None:
    from zqyy_assets.definitions import defs  # reads DATABASE_URL when called

    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; "
        f"fake LLM {args.latency_ms:.0f} ms a call; {args.keys:,} member keys; "
        f"key cache {'off' if args.no_key_cache else 'on'}"
    )
    # Half of each phase's members have a key already (added with the baseline's keys).
    warm, before, after = members[0], members[1 : 1 + args.single], members[1 + args.single : 1 + 2 * args.single]
    rest = members[1 + 2 * args.single :]
    bursts = rest[: args.burst], rest[args.burst : 2 * args.burst]  # new members, one range run each burst
    known = set(before[::2] + after[::2])
    instance.add_dynamic_partitions(MEMBERS, [f"1-{m}" for m in sorted(known)])
    _grow(instance, 0, SMALL)
    small = len(known) + SMALL

    started = time.monotonic()
    harness.start()
    ((_, inserted),) = _insert(url, [warm])
    if _wait_answered(url, [warm], inserted, 180) is None:
        raise SystemExit("warm-up event not answered in 180 s; see the daemon log in DAGSTER_HOME")
    print(f"daemon up and first event answered in {time.monotonic() - started:.1f} s (code server start included)")
    ticks = Ticks(ticks_url, instance, defs(), args.events)

    # Same-run baseline: the small key set.
    small_ticks = (*ticks.measure(args.ticks, range(SMALL), seed=1), ticks.cpu)
    since = time.time()
    small_singles = _singles(url, before, known, seed=7)
    small_daemon = _daemon_sensor_ticks(instance, since)
    small_burst = _burst(url, bursts[0])

    took = _grow(instance, SMALL, args.keys - len(known))
    print(
        f"grew `members` from {small:,} to {args.keys:,} keys with add_dynamic_partitions in batches of {BATCH:,}: "
        f"{took:.1f} s ({(args.keys - small) / took:,.0f} keys/s), the daemon running"
    )
    big_ticks = (*ticks.measure(args.ticks, range(SMALL, args.keys - len(known)), seed=2), ticks.cpu)
    since = time.time()
    big_singles = _singles(url, after, known, seed=8)
    big_daemon = _daemon_sensor_ticks(instance, since)
    big_burst = _burst(url, bursts[1])
    whole, cached = _reads_of_every_key(instance)

    p95 = _pct(big_ticks[0], 0.95) * 1000
    print(
        f"(a) inbox sensor tick, {args.events} new events ({args.events // 2} on existing keys, the rest new members): "
        f"p95 {p95:.0f} ms at {args.keys:,} keys (goal <= 100 ms: {'met' if p95 <= 100 else 'MISSED'})"
    )
    _report_ticks("baseline", small, *small_ticks, args.events)
    _report_ticks("at scale", args.keys, *big_ticks, args.events)
    print(
        f"    before this change each such tick first loaded every key: {statistics.median(whole) * 1000:.0f} ms "
        f"at {args.keys:,} keys (median of 3, same run)"
    )
    p50 = _pct([t for ts in big_singles.values() for t in ts], 0.5)
    print(
        f"(b) event -> {len(CHAIN)} answers cached, one event at a time through the daemon: p50 {p50:.2f} s "
        f"at {args.keys:,} keys (goal <= 8 s: {'met' if p50 <= 8 else 'MISSED'})"
    )
    _report_singles("baseline", small, small_singles, small_daemon)
    _report_singles("at scale", args.keys, big_singles, big_daemon)
    if args.burst:
        print(
            f"(c) a burst of {args.burst} new members at once (their keys added together, one range run a chain): "
            f"all answered in {small_burst:.1f} s at {small:,} keys, {big_burst:.1f} s at {args.keys:,} keys "
            f"(x{big_burst / small_burst:.2f})"
        )
        through = (
            "the key cache off"
            if args.no_key_cache
            else f"{statistics.median(cached) * 1000:.0f} ms through the shipped storage's key cache with nothing new"
        )
        print(
            f"    Dagster reads every key to resolve a range, six times a run of the chain: at {args.keys:,} keys "
            f"{statistics.median(whole) * 1000:.0f} ms a read from its own storage, {through} "
            "(median of 3 each, same run)"
        )
    print(f"load average {os.getloadavg()[0]:.1f} at end")


def _reads_of_every_key(instance: dg.DagsterInstance) -> tuple[list[float], list[float]]:
    """Seconds to read every ``members`` key: as dagster-postgres reads them, and through the
    shipped storage's key cache (``zqyy_assets/instance/cached_keys.py``) once it holds them."""
    storage = instance.event_log_storage
    own, cached = [], []
    instance.get_dynamic_partitions(MEMBERS)  # the cache fills
    for _ in range(3):
        t0 = time.perf_counter()
        set(PostgresEventLogStorage.get_dynamic_partitions(storage, MEMBERS))
        own.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        set(instance.get_dynamic_partitions(MEMBERS))
        cached.append(time.perf_counter() - t0)
    return own, cached


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--single", type=int, default=10, help="single events per phase (baseline, at scale)")
    parser.add_argument("--ticks", type=int, default=20, help="sensor ticks per phase")
    parser.add_argument("--events", type=int, default=100, help="new events per tick")
    parser.add_argument("--burst", type=int, default=20, help="new members at once, per phase (0: none)")
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument(
        "--no-key-cache",
        action="store_true",
        help="the storage without its key cache (remember_partition_keys: false), for an A/B run",
    )
    args = parser.parse_args()
    if args.keys < SMALL * 2 or args.ticks * args.events // 2 > SMALL:
        raise SystemExit(f"need --keys >= {SMALL * 2} and --ticks x --events / 2 <= {SMALL}")

    fake, base_url = _start_fake(args.latency_ms)
    try:
        with (
            scratch_database("zqyy_bench_members") as url,
            scratch_database("zqyy_bench_member_ticks") as ticks_url,
            tempfile.TemporaryDirectory() as home,
        ):
            members = _prepare_venue(url, args.days)
            need = 1 + 2 * args.single + 2 * args.burst
            if len(members) < need:
                raise SystemExit(f"the venue has {len(members)} members with history; need {need} (raise --days)")
            env = {**demo_env(base_url), **UNLIMITED_LLM}
            with daemon_harness(
                database_url=url,
                dagster_database=db.database_name(url) + "_dagster",
                home=Path(home),
                env=env,
                storage_config={"remember_partition_keys": not args.no_key_cache},
            ) as harness:
                os.environ["DAGSTER_PG_URL"] = harness.dagster_pg_url  # the instance's dagster.yaml reads it
                os.environ["DATABASE_URL"] = url  # the code location (its definitions) reads it
                with dg.DagsterInstance.from_config(str(harness.home)) as instance:
                    _run(args, url, ticks_url, harness, instance, members)
    finally:
        fake.terminate()
        fake.wait(timeout=10)


if __name__ == "__main__":
    main()
