"""Grounded numbers end to end: a scripted model that invents one figure is caught in a Dagster
materialization; with the check blocking (app2's default) the flagged answer is kept in the
history but the previous good answer stays the one served; elsewhere the check only warns."""

from typing import Any

import dagster as dg
import pytest

from tests.defs.ai.conftest import cache_rows, materialize, metadata
from zqyy_assets.core import cache, db
from zqyy_assets.defs.ai.assets import ai_assets, app2_finance
from zqyy_assets.defs.ai.jobs import ai_jobs
from zqyy_assets.defs.ods.assets import ods_assets
from zqyy_assets.testing.fake_dashscope import FakeDashScope

INVENTED = "¥987,654.32"
SITE_1 = {"zqyy/site_ids": "1"}


def _grounding(result: dg.ExecuteInProcessResult, check: str) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == check]
    return evaluation


def _with_invented_figure(answer: dict[str, Any]) -> dict[str, Any]:
    """The model's good answer with one made-up amount in its first insight."""
    insights = [dict(i) for i in answer["insights"]]
    insights[0]["content"] = f"本期营业额 {INVENTED}，表现稳定。"
    return {"insights": insights}


def test_an_invented_figure_is_caught_and_the_previous_good_answer_stays_served(
    venue: str, resources: dict[str, Any], fake: FakeDashScope
) -> None:
    first = materialize([app2_finance], resources, partition_key="all|this_month", tags=SITE_1)
    assert first.success
    check = _grounding(first, "app2_finance_grounded")
    assert check.passed and check.metadata["answers_checked"].value == 1
    assert check.metadata["grounding_rate_app2_finance"].value == 1.0
    assert metadata(first, "app2_finance")["grounding_rate_app2_finance"] == 1.0
    [good] = cache_rows(venue)
    assert good["status"] == "valid" and good["grounding"]["grounded"] and good["grounding"]["numbers"] > 3

    bad_answer = _with_invented_figure({k: v for k, v in good["result_json"].items() if not k.startswith("_")})
    fake.script("app2_finance", answer=bad_answer)
    second = materialize(
        [app2_finance], resources, partition_key="all|this_month", tags={**SITE_1, "zqyy/force": "true"}
    )

    check = _grounding(second, "app2_finance_grounded")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["answers_ungrounded"].value == 1 and check.metadata["numbers_ungrounded"].value == 1
    assert check.metadata["grounding_rate_app2_finance"].value == 0.0
    evidence = check.metadata["ungrounded"].value
    assert f"| 1 | this_month__all | {INVENTED} | 本期营业额 {INVENTED}，表现稳定。 | insights.0.content |" in evidence
    assert "no (kept as ungrounded)" in evidence
    md = metadata(second, "app2_finance")
    assert md["grounding_rate_app2_finance"] == 0.0

    # kept in the history, not served: the reads (and memoization) still see the good answer
    bad = cache_rows(venue)[-1]
    assert bad["status"] == "ungrounded" and bad["result_json"]["insights"][0]["content"].startswith("本期营业额 ¥987")
    assert bad["grounding"]["ungrounded"] == [
        {"number": INVENTED, "sentence": f"本期营业额 {INVENTED}，表现稳定。", "field": "insights.0.content"}
    ]
    with db.connect(venue) as conn:
        latest = cache.latest_valid(conn, 1, "app2_finance", "this_month__all")
    assert latest is not None and latest.id == good["id"]

    # the next run on unchanged figures reuses the good answer (memoization reads served rows only)
    third = materialize([app2_finance], resources, partition_key="all|this_month", tags=SITE_1)
    assert _grounding(third, "app2_finance_grounded").passed
    assert metadata(third, "app2_finance")["cache_hits"] == 1 and fake.count("app2_finance") == 2
    assert [r["status"] for r in cache_rows(venue)] == ["valid", "ungrounded"]


def test_the_check_warns_without_blocking_where_the_setting_says(
    venue: str, resources: dict[str, Any], fake: FakeDashScope, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZQYY_GROUNDING_BLOCKING_APPS", "")  # nothing blocks: flagged, served all the same
    fake.script("app2_finance", answer={"insights": [{"title": "营业额", "content": f"本月营业额 {INVENTED}。"}]})
    result = materialize([app2_finance], resources, partition_key="all|this_month", tags=SITE_1)
    check = _grounding(result, "app2_finance_grounded")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["blocking"].value is False and "| yes |" in check.metadata["ungrounded"].value
    [row] = cache_rows(venue)
    assert row["status"] == "valid" and not row["grounding"]["grounded"]


def test_member_chain_jobs_check_their_apps_and_warn_by_default(
    venue: str, resources: dict[str, Any], fake: FakeDashScope
) -> None:
    fake.script("app3_clue", answer={"clues": [{"category": "消费习惯", "summary": "近 30 天消费 ¥8,888.88"}]})
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("members", ["1-100"])
    defs = dg.Definitions(assets=[*ods_assets, *ai_assets], jobs=ai_jobs, resources=resources)
    result = defs.resolve_job_def("consumption_chain_job").execute_in_process(
        instance=instance, partition_key="1-100", raise_on_error=False
    )
    assert result.success  # a member app's check warns: its answer is served, the chain goes on
    app3 = _grounding(result, "app3_clue_grounded")
    assert not app3.passed and app3.severity == dg.AssetCheckSeverity.WARN
    assert "¥8,888.88" in app3.metadata["ungrounded"].value and "| yes |" in app3.metadata["ungrounded"].value
    md = metadata(result, "app3_clue")
    assert md["grounded"] is False and md["cache_status"] == "valid" and "¥8,888.88" in md["ungrounded_numbers"]
    # App8 and App7 answered from the offline analyst through the fake: every figure grounded
    for other in ("app8_consolidation", "app7_customer"):
        assert _grounding(result, f"{other}_grounded").passed, other


def test_a_blocked_app8_answer_does_not_replace_the_members_clues(
    venue: str, resources: dict[str, Any], fake: FakeDashScope, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZQYY_GROUNDING_BLOCKING_APPS", "app8_consolidation")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("members", ["1-100"])
    defs = dg.Definitions(assets=[*ods_assets, *ai_assets], jobs=ai_jobs, resources=resources)
    job = defs.resolve_job_def("consumption_chain_job")

    def clues() -> list[str]:
        with db.connect(venue) as conn:
            rows = conn.execute(
                "SELECT summary FROM biz.member_retention_clue WHERE site_id = 1 AND member_id = 100 ORDER BY id"
            )
            return [r["summary"] for r in rows]

    assert job.execute_in_process(instance=instance, partition_key="1-100", raise_on_error=False).success
    good = clues()
    assert good  # App8's grounded clues (the offline analyst's, through the fake)

    invented = {"clues": [{"category": "消费习惯", "summary": "累计消费 ¥66,666.66", "providers": ["app3"]}]}
    fake.script("app8_consolidation", answer=invented)
    result = job.execute_in_process(
        instance=instance, partition_key="1-100", tags={"zqyy/force": "true"}, raise_on_error=False
    )
    app8 = _grounding(result, "app8_consolidation_grounded")
    assert not app8.passed and app8.severity == dg.AssetCheckSeverity.ERROR
    assert cache_rows(venue, "app8_consolidation")[-1]["status"] == "ungrounded"
    assert clues() == good  # the member keeps the clues of the last good answer
    assert "clues_written" not in metadata(result, "app8_consolidation")
