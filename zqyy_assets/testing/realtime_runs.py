"""Dagster runs in a process of their own, for the realtime tests and benchmark.

``python -m zqyy_assets.testing.realtime_runs <mode> <database_url> ...``:

- ``answer <member_key>``: materialize the real ``app3_clue`` for one member partition
  (``{site}-{member}``) with the offline analyst: the answer is cached by the asset, as in a
  run the daemon launched, and the cache trigger pushes ``cache_updated``.
- ``alert <member_key>``: a run of ``app3_clue`` that fails, then the real
  ``ai_run_failure_alert_sensor`` evaluated on it (what the daemon does): an alert row, pushed
  as ``alert_created``.
- ``bench <site_id> <count> <interval_ms> <out.jsonl>``: one run whose asset caches ``count``
  answers, one transaction each, ``interval_ms`` apart, and appends each row's commit time
  (``time.time()`` right after the commit) to ``out.jsonl`` as it goes, one ``[cache_id, time]``
  line each, so a reader (or a bench that stops the run) sees every commit so far.

Each prints one JSON line (run id, success) and exits non-zero on an unexpected failure.
"""

import json
import sys
import time
from typing import Any

import dagster as dg

from zqyy_assets.core import cache, db
from zqyy_assets.defs.ai.assets import ai_assets, app3_clue
from zqyy_assets.defs.ai.partitions import members_partitions
from zqyy_assets.defs.ai.resources import LLMResource
from zqyy_assets.defs.events.status_sensors import ai_run_failure_alert_sensor
from zqyy_assets.defs.ods.assets import ods_assets
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource


def _answer(url: str, member_key: str) -> dict[str, Any]:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("members", [member_key])
    result = dg.materialize(
        [*ods_assets, *ai_assets],
        selection=[app3_clue],
        resources={
            "llm": LLMResource(database_url=url, provider="offline"),
            "postgres": PostgresResource(database_url=url),
            "venue_calendar": VenueCalendarResource(),
        },
        instance=instance,
        partition_key=member_key,
        tags={"zqyy/trigger": "consumption"},
        raise_on_error=False,
    )
    return {"run_id": result.run_id, "success": result.success}


@dg.asset(name="app3_clue", partitions_def=members_partitions)
def _broken_app3() -> None:
    raise RuntimeError("InvalidApiKey: the API key is wrong")


def _alert(url: str, member_key: str) -> dict[str, Any]:
    postgres = PostgresResource(database_url=url)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("members", [member_key])
    result = dg.materialize([_broken_app3], instance=instance, partition_key=member_key, raise_on_error=False)
    context = dg.build_run_status_sensor_context(
        sensor_name="ai_run_failure_alert_sensor",
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"postgres": postgres},
    ).for_run_failure()
    ai_run_failure_alert_sensor(context)
    return {"run_id": result.run_id, "success": result.success}


class BenchConfig(dg.Config):
    database_url: str
    site_id: int
    count: int
    interval_ms: float
    out: str


@dg.asset(name="bench_answers")
def bench_answers(context: dg.AssetExecutionContext, config: BenchConfig) -> None:
    """Caches ``count`` answers, one transaction each, and notes each commit's time."""
    with db.connect(config.database_url) as conn, open(config.out, "a", encoding="utf-8") as commits:
        for i in range(config.count):
            with conn.transaction():
                row = cache.insert_answer(
                    conn,
                    site_id=config.site_id,
                    cache_type="app3_clue",
                    target_id=str(100_000 + i),
                    input_hash=f"bench-{context.run.run_id}-{i}",
                    prompt_version="bench",
                    result_json={"clues": []},
                    score=None,
                    triggered_by="bench",
                    provider="offline",
                    model=None,
                    tokens_in=0,
                    tokens_out=0,
                    latency_ms=None,
                    dagster_run_id=context.run.run_id,
                )
            commits.write(f"[{row.id}, {time.time()!r}]\n")
            commits.flush()
            time.sleep(config.interval_ms / 1000)  # the pace of the answers, not a synchronisation


def _bench(url: str, site_id: int, count: int, interval_ms: float, out: str) -> dict[str, Any]:
    config = BenchConfig(database_url=url, site_id=site_id, count=count, interval_ms=interval_ms, out=out)
    result = dg.materialize(
        [bench_answers],
        instance=dg.DagsterInstance.ephemeral(),
        run_config=dg.RunConfig({"bench_answers": config}),
        raise_on_error=False,
    )
    return {"run_id": result.run_id, "success": result.success}


def main(argv: list[str]) -> int:
    mode, url, *rest = argv
    if mode == "answer":
        outcome = _answer(url, rest[0])
    elif mode == "alert":
        outcome = _alert(url, rest[0])
    elif mode == "bench":
        outcome = _bench(url, int(rest[0]), int(rest[1]), float(rest[2]), rest[3])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps(outcome))
    return 0 if outcome["success"] or mode == "alert" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
