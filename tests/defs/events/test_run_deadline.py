"""A chain run past its max runtime, with the real daemon: the run fails, the trigger job says
``timeout`` in its error, and a ``timeout`` alert is raised.

The deadline is the instance's run monitoring (dagster.yaml: 900 s for a member chain), injected
short here (3 s, checked every second) instead of waiting 900 s; the LLM is the fake DashScope
server answering after 30 s, so the chain's first call is still waiting when the deadline passes.
"""

from __future__ import annotations

import time

import pytest
import yaml

from tests.defs.events.conftest import event_row
from zqyy_assets.core import db
from zqyy_assets.core.tags import MAX_RUNTIME_TAG
from zqyy_assets.defs.ai.jobs import APP2_PREWARM_MAX_RUNTIME_S, app2_prewarm_job, consumption_chain_job
from zqyy_assets.testing.daemon_harness import PROJECT_ROOT, daemon_harness
from zqyy_assets.testing.fake_dashscope import FakeDashScope, demo_env

UNTHROTTLED = {
    "ZQYY_LLM_RATE_PER_MINUTE": "100000",
    "ZQYY_LLM_RATE_BURST": "10000",
    "ZQYY_LLM_DAILY_TOKEN_LIMIT": "1000000000",
    "ZQYY_LLM_MONTHLY_TOKEN_LIMIT": "1000000000",
    "ZQYY_LLM_REQUEST_TIMEOUT_SECONDS": "120",
    "ZQYY_LLM_ANSWER_DEADLINE_SECONDS": "120",
}


def test_the_shipped_deadlines() -> None:
    monitoring = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text(encoding="utf-8"))["run_monitoring"]
    assert monitoring["enabled"] and monitoring["max_runtime_seconds"] == 900
    assert MAX_RUNTIME_TAG not in consumption_chain_job.tags  # a member chain: the instance's 900 s
    assert app2_prewarm_job.tags[MAX_RUNTIME_TAG] == str(APP2_PREWARM_MAX_RUNTIME_S)
    assert APP2_PREWARM_MAX_RUNTIME_S > 900


def test_a_chain_run_past_its_deadline_fails_as_timeout_with_an_alert(db_url, venue, add_event, tmp_path) -> None:
    with FakeDashScope() as fake:
        fake.script("*", latency_ms=30_000)
        with daemon_harness(
            database_url=db_url,
            dagster_database=db.database_name(db_url) + "_dagster",
            home=tmp_path / "dagster_home",
            env={**demo_env(fake.base_url), **UNTHROTTLED},
            run_coordinator_config={"dequeue_interval_seconds": 1},
            run_monitoring={"max_runtime_seconds": 3, "poll_interval_seconds": 1},
        ) as harness:
            harness.start()
            event_id = add_event("consumption", member_id=100)
            deadline = time.monotonic() + 240
            while event_row(db_url, event_id)["status"] != "failed":
                if time.monotonic() > deadline:
                    errors = [ln for ln in harness.log_text().splitlines() if "Error" in ln or "Traceback" in ln]
                    pytest.fail(f"event {event_id} never failed: {event_row(db_url, event_id)}; {errors[-15:]}")
                time.sleep(0.5)
            row = event_row(db_url, event_id)
            assert row["error_message"].startswith("timeout: "), row["error_message"]
            assert "maximum runtime of 3 seconds" in row["error_message"]

            def timeout_alert() -> dict | None:
                with db.connect(db_url) as conn:
                    return conn.execute("SELECT * FROM biz.ai_alerts WHERE alert_type = 'timeout'").fetchone()

            while (alert := timeout_alert()) is None and time.monotonic() < deadline:
                time.sleep(0.5)
            assert alert is not None, "no timeout alert"
            assert (alert["site_id"], alert["event_id"], alert["occurrences"]) == (1, event_id, 1)
            assert alert["dagster_run_id"] in row["dagster_run_ids"]
            assert "运行超时" in alert["error_message"]
