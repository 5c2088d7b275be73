"""App2: the 72 partitions for every active site as one run, memoized, with failures isolated."""

from typing import Any

import dagster as dg
import pytest
from dagster._core.storage.partition_status_cache import (
    get_and_update_asset_status_cache_value,
)

from tests.defs.ai.conftest import (
    SiteFailingProxy,
    cache_rows,
    materialize,
    prompt_site,
)
from zqyy_assets.core import db, prompts
from zqyy_assets.core.partition_keys import all_app2_keys
from zqyy_assets.core.pricing import DEFAULT_PRICES
from zqyy_assets.defs.ai.assets import ai_assets, app2_finance
from zqyy_assets.defs.ai.jobs import (
    ai_jobs,
    app2_prewarm_run_request,
    app2_prewarm_shard_requests,
    materialize_app2_prewarm,
)
from zqyy_assets.defs.ai.partitions import app2_partitions
from zqyy_assets.defs.ods.assets import ods_assets


def _partitions(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.partition for e in result.get_asset_materialization_events()}


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "app2_coverage"]
    return evaluation


def _tokens_spent(db_url: str) -> int:
    with db.connect(db_url) as conn:
        return conn.execute("SELECT COALESCE(sum(tokens_used), 0) AS n FROM biz.ai_call_ledger").fetchone()["n"]


def _assert_app2_references(db_url: str, rows: list[dict]) -> None:
    """Site 1's 'hall' answer for this month names its windows, the areas read and the DWS rows summed."""
    [row] = [r for r in rows if r["site_id"] == 1 and r["target_id"] == "this_month__hall"]
    refs = row["result_json"]["_references"]
    with db.connect(db_url) as conn:
        as_of = conn.execute(
            "SELECT max(biz_date) AS d FROM dws.finance_area_daily WHERE site_id = 1 AND area_code = 'all'"
        ).fetchone()["d"]
        pair = prompts.period_pair("this_month", as_of)
        counted = conn.execute(
            """SELECT count(*) AS n FROM dws.finance_area_daily
               WHERE site_id = 1 AND area_code IN ('hallA', 'hallB', 'hallC')
                 AND (biz_date BETWEEN %s AND %s OR biz_date BETWEEN %s AND %s)""",
            (pair.current.start, pair.current.end, pair.comparison.start, pair.comparison.end),
        ).fetchone()["n"]
    assert counted > 0
    assert refs == {
        "site_id": 1,
        "as_of_date": as_of.isoformat(),
        "time_dimension": "this_month",
        "area": "hall",
        "area_codes": ["hallA", "hallB", "hallC"],
        "period": {"start": pair.current.start.isoformat(), "end": pair.current.end.isoformat()},
        "comparison": {"start": pair.comparison.start.isoformat(), "end": pair.comparison.end.isoformat()},
        "tables": [{"table": "dws.finance_area_daily", "rows": counted}],
        "sources": [],
    }


def test_prewarm_is_one_run_and_a_second_prewarm_is_free(venue: str, resources: dict[str, Any], fake) -> None:
    # what a sensor or the 10:00 schedule sends: one request, all 72 partitions, every active site
    request = app2_prewarm_run_request(trigger="dws_completed", run_key="ev1:app2_prewarm")
    defs = dg.Definitions(assets=[*ods_assets, *ai_assets], jobs=ai_jobs, resources=resources)
    job = defs.resolve_job_def(request.job_name)
    instance = dg.DagsterInstance.ephemeral()

    first = job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)
    assert first.success
    assert _partitions(first) == {str(k.partition_key) for k in all_app2_keys()}
    rows = cache_rows(venue)
    assert len(rows) == 144 and {r["site_id"] for r in rows} == {1, 2}  # site 3 is inactive
    assert {r["triggered_by"] for r in rows} == {"dws_completed"} and {r["dagster_run_id"] for r in rows} == {
        first.run_id
    }
    by_type = {t: sum(r["cache_type"] == t for r in rows) for t in ("app2_finance", "app2a_finance_area")}
    assert by_type == {"app2_finance": 16, "app2a_finance_area": 128}
    assert fake.count("app2_finance") == 16 and fake.count("app2a_finance_area") == 128
    one = next(e for e in first.get_asset_materialization_events() if e.partition == "vip|this_month")
    md = {k: v.value for k, v in one.materialization.metadata.items()}
    assert (md["calls"], md["cache_hits"], md["sites_ok"], md["sites_failed"], md["target_id"]) == (
        2,
        0,
        2,
        0,
        "this_month__vip",
    )
    assert md["app"] == "app2a_finance_area" and md["tokens_in"] > 0 and md["provider"] == "dashscope"
    # cost next to the tokens, per site: the fake answers as qwen-plus
    plus = DEFAULT_PRICES["qwen-plus"]
    assert md["cost_cny"] == pytest.approx(
        (md["tokens_in"] * plus.input_per_1k + md["tokens_out"] * plus.output_per_1k) / 1000, abs=1e-5
    )  # each call rounded to 6 places
    assert md["cost_cny_by_site"].startswith("1: ") and ", 2: " in md["cost_cny_by_site"]
    assert (md["memo_tokens_avoided"], md["memo_cost_avoided_cny"]) == (0, 0.0)
    assert _check(first).passed and _check(first).metadata["sites_complete"].value == 2
    # the grounding rate per app, in each partition's metadata and the run's grounding check
    assert md["grounding_rate_app2a_finance_area"] == 1.0
    [grounded] = [e for e in first.get_asset_check_evaluations() if e.check_name == "app2_finance_grounded"]
    assert grounded.passed and grounded.metadata["answers_checked"].value == 144
    assert grounded.metadata["grounding_rate_app2_finance"].value == 1.0
    assert grounded.metadata["grounding_rate_app2a_finance_area"].value == 1.0
    assert all(r["grounding"]["grounded"] and r["status"] == "valid" for r in rows)
    _assert_app2_references(venue, rows)
    spent = _tokens_spent(venue)
    assert spent > 0

    # unchanged data: 72 partitions materialized again from the cache, no call, no token
    second = job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)
    assert second.success and len(_partitions(second)) == 72
    totals = [
        {k: v.value for k, v in e.materialization.metadata.items()} for e in second.get_asset_materialization_events()
    ]
    assert sum(t["calls"] for t in totals) == 0 and sum(t["cache_hits"] for t in totals) == 144
    assert sum(t["tokens_in"] + t["tokens_out"] for t in totals) == 0
    assert fake.count() == 144 and _tokens_spent(venue) == spent and len(cache_rows(venue)) == 144
    # what memoization saved: every hit would have cost the app's average call (its 16 or 128 calls)
    assert sum(t["cost_cny"] for t in totals) == 0
    assert sum(t["memo_tokens_avoided"] for t in totals) == pytest.approx(spent, rel=0.01)
    saved = sum(t["memo_cost_avoided_cny"] for t in totals)
    with db.connect(venue) as conn:
        booked = conn.execute(
            "SELECT count(*) AS hits, sum(cost_avoided_cny)::float8 AS saved,"
            " (SELECT sum(cost_cny)::float8 FROM biz.ai_call_ledger) AS cost FROM biz.ai_memo_hits"
        ).fetchone()
    assert booked["hits"] == 144 and booked["saved"] == pytest.approx(saved) == pytest.approx(booked["cost"], rel=0.01)


def test_one_failing_site_leaves_the_other_sites_answers(venue: str, resources: dict[str, Any], make_llm, fake) -> None:
    with SiteFailingProxy(fake.url, lambda prompt: prompt_site(prompt) == 2) as proxy:
        llm = make_llm(base_url=proxy.base_url)
        result = materialize_app2_prewarm(dg.DagsterInstance.ephemeral(), database_url=venue, llm=llm, concurrency=8)
    assert not result.success
    assert {r["site_id"] for r in cache_rows(venue)} == {1} and len(cache_rows(venue, site_id=1)) == 72
    assert proxy.failed == 144  # 72 answers x max_attempts 2, each a transient 500
    # every partition lacks site 2's answer: none is materialized, all are listed as failed
    assert _partitions(result) == set()
    failure = result.failure_data_for_node("app2_finance").user_failure_data
    assert failure.metadata["failed_partitions"].value.count("\n") == 71
    assert "| 2 | this_month__all | app2_finance |" in failure.metadata["failed_answers"].value
    assert (failure.metadata["sites_ok"].value, failure.metadata["sites_failed"].value) == (1, 1)
    assert (failure.metadata["calls"].value, failure.metadata["answers_written"].value) == (144, 72)
    coverage = _check(result)
    assert not coverage.passed and coverage.metadata["answers_missing"].value == 72
    assert "| 2 | 0 | 72 |" in coverage.metadata["coverage"].value

    # once the provider answers again, any partition re-runs alone: site 1 from the cache, site 2 called
    rerun = materialize([app2_finance], resources, partition_key="all|this_month")
    assert rerun.success and _partitions(rerun) == {"all|this_month"}
    md = {k: v.value for k, v in rerun.get_asset_materialization_events()[0].materialization.metadata.items()}
    assert (md["calls"], md["cache_hits"], md["sites_ok"]) == (1, 1, 2)


def test_failed_partitions_show_as_failed_and_rerun_alone(
    venue: str, resources: dict[str, Any], make_llm, fake
) -> None:
    def vip_at_site_2(prompt: dict) -> bool:
        return prompt_site(prompt) == 2 and prompt.get("area") == "vip"

    # the partition status the UI shows is computed from the instance's event log
    with dg.DagsterInstance.ephemeral() as instance:
        with SiteFailingProxy(fake.url, vip_at_site_2) as proxy:
            result = materialize_app2_prewarm(instance, database_url=venue, llm=make_llm(base_url=proxy.base_url))
        assert not result.success
        vip = {str(k.partition_key) for k in all_app2_keys() if k.area == "vip"}
        assert _partitions(result) == {str(k.partition_key) for k in all_app2_keys()} - vip
        assert len(cache_rows(venue)) == 144 - 8

        # what the UI reads: the 64 as materialized, the 8 vip partitions as failed
        status = get_and_update_asset_status_cache_value(instance, app2_finance.key, app2_partitions)
        assert set(status.deserialize_failed_partition_subsets(app2_partitions).get_partition_keys()) == vip
        assert len(status.deserialize_materialized_partition_subsets(app2_partitions).get_partition_keys()) == 64

        rerun = materialize([app2_finance], resources, instance=instance, partition_key="vip|last_week")
        assert rerun.success
        status = get_and_update_asset_status_cache_value(instance, app2_finance.key, app2_partitions)
        assert set(status.deserialize_failed_partition_subsets(app2_partitions).get_partition_keys()) == vip - {
            "vip|last_week"
        }


def test_an_answer_that_never_validates_is_never_cached(venue: str, resources: dict[str, Any], fake) -> None:
    fake.script("app2_finance", answer={"insights": []})  # valid JSON, but App2 needs an insight
    result = materialize([app2_finance], resources, partition_key="all|last_month")
    assert not result.success
    assert fake.count("app2_finance") == 6  # 3 answers asked per site, 2 sites
    assert cache_rows(venue) == []
    failure = result.failure_data_for_node("app2_finance").user_failure_data
    assert "`all|last_month`" in failure.metadata["failed_partitions"].value
    assert "InvalidAnswerError" in failure.metadata["failed_answers"].value


def test_a_run_can_be_narrowed_to_sites(venue: str, resources: dict[str, Any], fake) -> None:
    result = materialize([app2_finance], resources, partition_key="snooker|this_month", tags={"zqyy/site_ids": "2"})
    assert result.success
    [row] = cache_rows(venue)
    assert (row["site_id"], row["cache_type"], row["target_id"]) == (2, "app2a_finance_area", "this_month__snooker")
    [request] = fake.requests("app2a_finance_area")
    assert '"area":"snooker"' in request["prompt"] and '"revenue":200.0' in request["prompt"]


def test_a_sharded_prewarm_runs_each_shard_alone_and_reruns_free(venue: str, resources: dict[str, Any], fake) -> None:
    requests = app2_prewarm_shard_requests([2, 1], shard_size=1, trigger="schedule", run_key="day")
    assert [(r.run_key, r.tags["zqyy/site_ids"], r.tags["zqyy/shard"]) for r in requests] == [
        ("day-shard-1-of-2", "1", "1/2"),
        ("day-shard-2-of-2", "2", "2/2"),
    ]
    defs = dg.Definitions(assets=[*ods_assets, *ai_assets], jobs=ai_jobs, resources=resources)
    job = defs.resolve_job_def(requests[0].job_name)
    instance = dg.DagsterInstance.ephemeral()

    first = job.execute_in_process(instance=instance, tags=requests[0].tags, raise_on_error=False)
    assert first.success and len(_partitions(first)) == 72
    # the shard's coverage: its own site, 72 of 72, while site 2 has nothing yet
    check = _check(first)
    assert check.passed and check.metadata["active_sites"].value == 1
    assert "| 1 | 72 | 72 | - |" in check.metadata["coverage"].value
    site1 = {r["id"] for r in cache_rows(venue)}
    assert len(site1) == 72 and {r["site_id"] for r in cache_rows(venue)} == {1}

    again = job.execute_in_process(instance=instance, tags=requests[0].tags, raise_on_error=False)
    assert again.success and fake.count() == 72  # the same shard again: every answer a memo hit
    second = job.execute_in_process(instance=instance, tags=requests[1].tags, raise_on_error=False)
    assert second.success and _check(second).passed and fake.count() == 144
    rows = cache_rows(venue)
    assert len(rows) == 144 and {r["id"] for r in rows if r["site_id"] == 1} == site1


def test_an_over_budget_prewarm_answers_the_most_valuable_first_and_says_what_it_skipped(
    venue: str, resources: dict[str, Any], make_llm, fake
) -> None:
    # 100 tokens a call (no history yet: the reservation is the estimate), 1,000 left today: 10 calls.
    fake.script("*", tokens=(60, 40))
    llm = make_llm(daily_token_limit=1_000, budget_reserve_tokens=100)
    result = materialize_app2_prewarm(dg.DagsterInstance.ephemeral(), database_url=venue, llm=llm, concurrency=4)

    assert result.success
    # area 'all' first; this_month and this_week, then the default order of the older windows
    windows = ("this_month", "this_week", "last_week", "last_month", "this_quarter")
    assert _partitions(result) == {f"all|{w}" for w in windows}
    assert fake.count() == 10 and fake.count("app2a_finance_area") == 0
    assert {(r["site_id"], r["target_id"]) for r in cache_rows(venue)} == {
        (s, f"{w}__all") for s in (1, 2) for w in windows
    }
    [observation] = [
        e.asset_observation_data.asset_observation
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
    ]
    md = {k: v.value for k, v in observation.metadata.items()}
    assert md["budget_skipped_answers"] == 144 - 10
    assert "only 1000 left" in md["budget"] and "134 skipped with reason 'budget'" in md["budget"]
    assert "- `vip|this_month`: 2 site(s)" in md["budget_skipped_partitions"]
    assert md["llm_inflight_cap_cuts"] == 0
    assert _tokens_spent(venue) == 1_000  # nothing refused halfway
    with db.connect(venue) as conn:
        statuses = conn.execute("SELECT DISTINCT status FROM biz.ai_call_ledger").fetchall()
    assert [r["status"] for r in statuses] == ["success"]
