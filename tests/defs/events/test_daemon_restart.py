"""Exactly once, with the real daemon: a burst of events, the daemon killed mid-burst and started
again; every event ends with exactly one run of its chain and an answer, none lost.

``dagster-daemon run`` runs as a subprocess on workspace.yaml with the project's dagster.yaml
(Postgres storage, queued runs) and the offline LLM provider. The queue is read every second
(instead of 5) only to keep the test short.
"""

from __future__ import annotations

import threading
import time
from datetime import date

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType

from zqyy_assets.core import db, inbox
from zqyy_assets.core import dws_sql as compute
from zqyy_assets.core.tags import RUN_KEY_TAG
from zqyy_assets.testing.daemon_harness import daemon_harness
from zqyy_assets.tools.demo_venue import generate_demo_venue

BURST = 8
OFFLINE_AND_UNTHROTTLED = {
    "ZQYY_LLM_PROVIDER": "offline",
    "ZQYY_LLM_RATE_PER_MINUTE": "100000",
    "ZQYY_LLM_RATE_BURST": "10000",
    "ZQYY_LLM_DAILY_TOKEN_LIMIT": "1000000000",
    "ZQYY_LLM_MONTHLY_TOKEN_LIMIT": "1000000000",
}


def _venue_members(url: str, n: int) -> list[int]:
    generate_demo_venue(url, sites=1, days=30, seed=21, end_date=date.today(), show_progress=False)
    with db.transaction(url) as conn:
        compute.refresh_finance_area_daily(conn, date(2025, 1, 1), date.today(), tz="Asia/Shanghai", cutoff_hours=6)
        compute.refresh_member_profile(conn, tz="Asia/Shanghai", cutoff_hours=6)
        compute.refresh_assistant_member(conn)
        rows = conn.execute(
            "SELECT DISTINCT member_id FROM ods.settlements WHERE site_id = 1 AND member_id IS NOT NULL"
            " ORDER BY 1 LIMIT %s",
            (n,),
        ).fetchall()
    return [r["member_id"] for r in rows]


def _insert_at_once(url: str, members: list[int], ids: list[int]) -> threading.Thread:
    """One producer per member, each on its own connection, all released together (the
    commit-order lock is part of what is tested); the returned thread ends when all have."""
    lock = threading.Lock()
    start = threading.Barrier(len(members))

    def produce(member_id: int) -> None:
        start.wait()
        with db.transaction(url) as conn:
            event_id = inbox.insert_event(conn, event_type="consumption", site_id=1, member_id=member_id)
        with lock:
            ids.append(event_id)

    def produce_all() -> None:
        threads = [threading.Thread(target=produce, args=(m,)) for m in members]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    producer = threading.Thread(target=produce_all)
    producer.start()
    return producer


def _inbox_sensor_ticked(instance: dg.DagsterInstance) -> bool:
    return any(
        state.name == "ai_events_sensor" and state.instigator_data and state.instigator_data.last_tick_timestamp
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    )


def _runs_by_event(instance: dg.DagsterInstance, url: str) -> dict[int, list[dg.DagsterRun]]:
    """Every consumption-chain run of the instance by the events it answers: a run key names the
    events in biz.ai_event_runs (a range run answers several). Runs are read from their bodies:
    a run the killed daemon wrote may be missing from the tag index (see status.find_runs)."""
    with db.connect(url) as conn:
        planned = {
            r["run_key"]: r["event_ids"]
            for r in conn.execute(
                "SELECT run_key, event_ids FROM biz.ai_event_runs WHERE job_name = 'consumption_chain_job'"
            )
        }
    runs: dict[int, list[dg.DagsterRun]] = {}
    for run in instance.get_runs():
        for event_id in planned.get(run.tags.get(RUN_KEY_TAG, ""), []):
            runs.setdefault(event_id, []).append(run)
    return runs


def _wait(condition, timeout: float, what: str, harness) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    errors = [line for line in harness.log_text().splitlines() if "ERROR" in line or "Traceback" in line]
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; daemon errors: {errors[-20:]}")


def test_burst_survives_a_daemon_killed_mid_burst(db_url, tmp_path, monkeypatch) -> None:
    members = _venue_members(db_url, BURST)
    assert len(members) == BURST
    dagster_db = db.database_name(db_url) + "_dagster"
    try:
        with daemon_harness(
            database_url=db_url,
            dagster_database=dagster_db,
            home=tmp_path / "dagster_home",
            env=OFFLINE_AND_UNTHROTTLED,
            run_coordinator_config={"dequeue_interval_seconds": 1},
        ) as harness:
            monkeypatch.setenv("DAGSTER_PG_URL", harness.dagster_pg_url)
            with dg.DagsterInstance.from_config(str(harness.home)) as instance:
                t0 = time.monotonic()
                first_daemon = harness.start()
                _wait(lambda: _inbox_sensor_ticked(instance), 60, "the inbox sensor's first tick", harness)
                ids: list[int] = []
                first_half = _insert_at_once(db_url, members[: BURST // 2], ids)

                # Kill the daemon as soon as it has created the burst's first run: the tick that
                # created it may still be submitting the others. The second half of the burst
                # arrives only then, while the daemon is down and starting again.
                _wait(lambda: len(instance.get_run_ids()) >= 1, 90, "the first run", harness)
                harness.kill(first_daemon)
                first_half.join()
                with db.connect(db_url) as conn:
                    at_kill = conn.execute("SELECT count(*) AS n FROM biz.ai_events").fetchone()["n"]
                runs_at_kill = len(instance.get_run_ids())
                assert at_kill == BURST // 2

                t_kill = time.monotonic() - t0
                second_half = _insert_at_once(db_url, members[BURST // 2 :], ids)
                harness.start()
                second_half.join()
                _wait(
                    lambda: len(ids) == BURST and set(_runs_by_event(instance, db_url)) == set(ids),
                    90,
                    "a run for every event",
                    harness,
                )

                def all_decided() -> bool:
                    with db.connect(db_url) as conn:
                        return (
                            conn.execute(
                                "SELECT count(*) AS n FROM biz.ai_events WHERE status IN ('completed', 'failed')"
                            ).fetchone()["n"]
                            == BURST
                        )

                t_runs = time.monotonic() - t0
                _wait(all_decided, 90, "every event completed", harness)
                t_done = time.monotonic() - t0

                runs = _runs_by_event(instance, db_url)
                assert {e: len(r) for e, r in runs.items()} == {e: 1 for e in ids}  # exactly one run each
                distinct = {r[0].run_id for r in runs.values()}
                assert len(instance.get_runs()) == len(distinct) <= BURST  # and no other run
                assert all(r[0].status == dg.DagsterRunStatus.SUCCESS for r in runs.values())
                with db.connect(db_url) as conn:
                    events = conn.execute(
                        "SELECT id, status, dagster_run_ids FROM biz.ai_events ORDER BY id"
                    ).fetchall()
                    answered = conn.execute(
                        "SELECT count(DISTINCT target_id) AS n FROM biz.ai_cache WHERE cache_type = 'app7_customer'"
                    ).fetchone()["n"]
                assert [e["status"] for e in events] == ["completed"] * BURST
                assert all(e["dagster_run_ids"] == [runs[e["id"]][0].run_id] for e in events)
                assert answered == BURST
                print(
                    f"killed at {t_kill:.0f} s with {at_kill}/{BURST} events inserted and {runs_at_kill} run(s) "
                    f"created; all {len(distinct)} runs created at {t_runs:.0f} s, "
                    f"all events completed at {t_done:.0f} s"
                )
    finally:
        with db.connect(db.with_database(db_url, "postgres"), autocommit=True) as conn:
            conn.execute(db.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db.sql.Identifier(dagster_db)))
