"""Benchmark: the daily retirement of member partition keys, against one delete a key.

A scratch database and a Dagster instance on Postgres (the project's pooled storage, as in
``make demo``). ``--keys`` ``members`` keys are added (synthetic members of sites 2..1000); every
other member gets an inbox event now, the rest have none, so half the keys are retired.

- baseline: the quiet keys deleted with Dagster's public API, one call a key (what the job did
  before; the judging and paging left out, so the baseline is if anything flattered);
- the job (``retire_member_partitions_job``, in process: paging, judging, one delete a page),
  on the same keys added back.

Printed: keys retired per second each way, the ratio, and what a backlog of 1,000,000 quiet
keys (the first run after deploying) would take at each rate.

    .venv/bin/python bench/bench_retirement.py [--keys 20000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dagster as dg  # noqa: E402
from _db import postgres_dagster_instance, scratch_database  # noqa: E402
from bench_members import SYNTHETIC_MEMBER, _grow, _synthetic_key  # noqa: E402

from zqyy_assets.core import db  # noqa: E402
from zqyy_assets.core.vocabulary import MEMBERS  # noqa: E402
from zqyy_assets.defs.events.retirement import MemberPartitionsResource, retire_member_partitions_job  # noqa: E402
from zqyy_assets.defs.resources import PostgresResource  # noqa: E402


def _prepare(url: str, instance: dg.DagsterInstance, keys: int) -> list[str]:
    """Every key added; every other member with an event now. The quiet keys, which get retired."""
    with db.transaction(url) as conn:
        conn.execute(
            """INSERT INTO biz.ai_events (event_type, site_id, member_id, biz_date, status)
               SELECT 'consumption', 2 + i %% 999, %s + i, current_date, 'completed'
                 FROM generate_series(0, %s - 1, 2) i""",
            (SYNTHETIC_MEMBER, keys),
        )
    _grow(instance, 0, keys)
    return [_synthetic_key(i) for i in range(1, keys, 2)]


def _one_by_one(instance: dg.DagsterInstance, quiet: list[str]) -> float:
    """Seconds to delete ``quiet`` one public call a key."""
    began = time.perf_counter()
    for key in quiet:
        instance.delete_dynamic_partition(MEMBERS, key)
    return time.perf_counter() - began


def _retire(url: str, instance: dg.DagsterInstance) -> tuple[int, float]:
    """(keys retired, seconds) of one run of the job."""
    began = time.perf_counter()
    result = retire_member_partitions_job.execute_in_process(
        instance=instance,
        resources={"postgres": PostgresResource(database_url=url), "member_partitions": MemberPartitionsResource()},
    )
    seconds = time.perf_counter() - began
    assert result.success
    [output] = [e for e in result.all_node_events if e.is_successful_output]
    return int(output.step_output_data.metadata[f"{MEMBERS}_retired"].value), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=20_000)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; {args.keys:,} keys")
    with scratch_database("zqyy_bench_retire") as url, postgres_dagster_instance(url) as instance:
        quiet = _prepare(url, instance, args.keys)
        seconds = _one_by_one(instance, quiet)
        assert len(instance.get_dynamic_partitions(MEMBERS)) == args.keys - len(quiet)
        baseline = len(quiet) / seconds
        print(f"one delete a key (baseline): {len(quiet):,} keys in {seconds:.1f} s ({baseline:,.0f} keys/s)")
        instance.add_dynamic_partitions(MEMBERS, quiet)  # back, for the job
        retired, seconds = _retire(url, instance)
        assert retired == len(quiet), f"retired {retired}, expected {len(quiet)}"
        assert len(instance.get_dynamic_partitions(MEMBERS)) == args.keys - len(quiet)
        job = retired / seconds
        print(f"the retirement job: retired {retired:,} of {args.keys:,} keys in {seconds:.1f} s ({job:,.0f} keys/s)")
    print(
        f"retirement: {job:,.0f} keys/s against {baseline:,.0f} one delete a key: x{job / baseline:.1f}; "
        f"a backlog of 1,000,000 quiet keys: {1_000_000 / job / 60:.1f} min (one delete a key: "
        f"{1_000_000 / baseline / 60:.0f} min)"
    )
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
