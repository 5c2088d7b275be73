"""Member and assistant x member apps through Dagster, the real SDK and the fake DashScope server."""

from typing import Any

import dagster as dg

from tests.defs.ai.conftest import SiteFailingProxy, cache_rows, materialize, metadata
from zqyy_assets.core import db
from zqyy_assets.core.answer_schemas import validate_answer
from zqyy_assets.core.apps import prompt_version
from zqyy_assets.core.tags import RANGE_END_TAG, RANGE_START_TAG
from zqyy_assets.defs.ai.assets import (
    ai_assets,
    app3_clue,
    app6_note,
    app8_consolidation,
)
from zqyy_assets.defs.ai.jobs import ai_jobs
from zqyy_assets.defs.ods.assets import ods_assets


def _instance(members: list[str] = (), assistant_members: list[str] = ()) -> dg.DagsterInstance:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("members", list(members))
    instance.add_dynamic_partitions("assistant_members", list(assistant_members))
    return instance


def _run_job(
    name: str,
    resources: dict[str, Any],
    instance: dg.DagsterInstance,
    partition_key: str | None,
    tags: dict[str, str] | None = None,
) -> dg.ExecuteInProcessResult:
    defs = dg.Definitions(assets=[*ods_assets, *ai_assets], jobs=ai_jobs, resources=resources)
    return defs.resolve_job_def(name).execute_in_process(
        instance=instance, partition_key=partition_key, tags=tags, raise_on_error=False
    )


def _ledger_count(db_url: str) -> int:
    with db.connect(db_url) as conn:
        return conn.execute("SELECT count(*) AS n FROM biz.ai_call_ledger").fetchone()["n"]


def test_memoization_hit_miss_and_forced_bypass(venue, resources, fake) -> None:
    instance = _instance(["1-100"])

    first = materialize([app3_clue], resources, instance=instance, partition_key="1-100")
    assert first.success
    md = metadata(first, "app3_clue")
    assert (md["calls"], md["cache_hits"], md["answers_written"]) == (1, 0, 1)
    assert md["tokens_in"] > 0 and md["tokens_out"] > 0 and md["latency_max_ms"] >= md["latency_p50_ms"] > 0
    assert (md["provider"], md["model"], md["sites_ok"], md["sites_failed"]) == ("dashscope", "qwen-plus", 1, 0)
    expected_version = f"dashscope:app3-p1+sys.{prompt_version('app3_clue')}"
    assert md["prompt_version"] == expected_version
    [row] = cache_rows(venue, "app3_clue")
    assert (row["site_id"], row["target_id"], row["prompt_version"], row["provider"], row["model"]) == (
        1,
        "100",
        expected_version,
        "dashscope",
        "qwen-plus",
    )
    assert (row["triggered_by"], row["dagster_run_id"], row["status"]) == ("manual", first.run_id, "valid")
    assert (row["tokens_in"], row["tokens_out"]) == (md["tokens_in"], md["tokens_out"])
    assert fake.count("app3_clue") == 1

    # unchanged input: no call, the cached answer is the answer
    hit = materialize([app3_clue], resources, instance=instance, partition_key="1-100")
    md = metadata(hit, "app3_clue")
    assert (md["calls"], md["cache_hits"], md["tokens_in"], md["tokens_out"], md["cache_row_id"]) == (
        0,
        1,
        0,
        0,
        row["id"],
    )
    assert md["provider"] == "dashscope"  # of the cached answer
    assert fake.count("app3_clue") == 1 and len(cache_rows(venue, "app3_clue")) == 1

    # forced, by run tag and by config: called again, history kept
    forced = materialize([app3_clue], resources, instance=instance, partition_key="1-100", tags={"zqyy/force": "true"})
    assert metadata(forced, "app3_clue")["calls"] == 1
    forced = materialize(
        [app3_clue],
        resources,
        instance=instance,
        partition_key="1-100",
        run_config={"ops": {"member_apps": {"config": {"force": True, "trigger": "admin_manual"}}}},
    )
    assert metadata(forced, "app3_clue")["calls"] == 1
    rows = cache_rows(venue, "app3_clue")
    assert len(rows) == 3 and fake.count("app3_clue") == 3 and rows[-1]["triggered_by"] == "admin_manual"
    assert len({r["input_hash"] for r in rows}) == 1

    # new data is a new input: a miss
    with db.transaction(venue) as conn:
        conn.execute("""INSERT INTO ods.settlements (site_id, settlement_id, member_id, area_code, table_id, started_at,
                            ended_at, settled_at, table_minutes, table_fee, total, pay_method)
                        VALUES (1, 9, 100, 'hallA', 11, '2026-03-03 20:00+08', '2026-03-03 21:00+08',
                                '2026-03-03 21:00+08', 60, 60.00, 60.00, '微信')""")
    miss = materialize([app3_clue], resources, instance=instance, partition_key="1-100")
    assert (metadata(miss, "app3_clue")["calls"], metadata(miss, "app3_clue")["cache_hits"]) == (1, 0)
    rows = cache_rows(venue, "app3_clue")
    assert len(rows) == 4 and rows[-1]["input_hash"] != rows[0]["input_hash"]
    assert _ledger_count(venue) == fake.count() == 4  # a hit never reaches the LLM layer


def test_invalid_answer_is_retried_and_never_cached(venue, resources, fake) -> None:
    # A bare list is valid JSON (the LLM layer wraps it as insights) but not App3's schema.
    fake.script("app3_clue", ["bare_list", "ok"])
    result = materialize([app3_clue], resources, instance=_instance(["1-100"]), partition_key="1-100")
    assert result.success
    md = metadata(result, "app3_clue")
    assert (md["calls"], md["invalid_answers"], md["answers_written"]) == (2, 1, 1)
    [row] = cache_rows(venue, "app3_clue")
    assert validate_answer("app3_clue", row["result_json"]).clues
    assert fake.count("app3_clue") == 2
    # The ledger books the unusable answer as a failed call (its tokens still count).
    with db.connect(venue) as conn:
        calls = conn.execute("""SELECT status, error_code, error_message, tokens_used FROM biz.ai_call_ledger
                                WHERE app_name = 'app3_clue' ORDER BY id""").fetchall()
    assert [(c["status"], c["error_code"]) for c in calls] == [("failed", "InvalidAnswer"), ("success", None)]
    assert calls[0]["error_message"].startswith("clues: ") and calls[0]["tokens_used"] > 0


def test_permanent_error_fails_at_once_and_writes_nothing(venue, resources, fake) -> None:
    fake.script("app3_clue", ["401"])
    result = materialize([app3_clue], resources, instance=_instance(["1-100"]), partition_key="1-100")
    assert not result.success
    failure = result.failure_data_for_node("member_apps")
    assert "InvalidApiKey" in failure.error.message
    assert fake.count("app3_clue") == 1  # no retry, no RetryPolicy re-run
    assert cache_rows(venue) == []


def test_app8_replaces_its_source_and_keeps_manual_clues(venue, resources, fake) -> None:
    with db.transaction(venue) as conn:
        conn.execute("""INSERT INTO biz.member_retention_clue
                            (site_id, member_id, category, summary, source, recorded_by_name)
                        VALUES (1, 100, '客户基础', '🎂 3月生日', 'manual', '小美')""")

    def clues() -> list[dict]:
        with db.connect(venue) as conn:
            return conn.execute("""SELECT id, source, category, summary, detail, recorded_by_name, dagster_run_id
                                   FROM biz.member_retention_clue WHERE site_id = 1 AND member_id = 100
                                   ORDER BY source, id""").fetchall()

    instance = _instance(["1-100"])
    note = _run_job("note_chain_job", resources, instance, "1-100", tags={"zqyy/trigger": "note_created"})
    assert note.success
    assert metadata(note, "app6_note")["score"] > 0
    md = metadata(note, "app8_consolidation")
    [app8] = cache_rows(venue, "app8_consolidation")
    answer_clues = app8["result_json"]["clues"]
    assert md["clue_source"] == "ai_note" and md["clues_written"] == len(answer_clues) > 0 and md["clues_deleted"] == 0
    after_note = clues()
    manual = [c for c in after_note if c["source"] == "manual"]
    ai_note = [c for c in after_note if c["source"] == "ai_note"]
    assert [c["summary"] for c in manual] == ["🎂 3月生日"]
    assert [(c["summary"], c["recorded_by_name"], c["dagster_run_id"]) for c in ai_note] == [
        (f"{c['emoji']} {c['summary']}" if c["emoji"] else c["summary"], "、".join(c["providers"]), note.run_id)
        for c in answer_clues
    ]

    # the same chain again, forced: the ai_note set is replaced, not appended to; manual untouched
    again = _run_job(
        "note_chain_job", resources, instance, "1-100", tags={"zqyy/trigger": "note_created", "zqyy/force": "true"}
    )
    assert metadata(again, "app8_consolidation")["clues_deleted"] == len(ai_note)
    after_again = clues()
    assert [c for c in after_again if c["source"] == "manual"] == manual
    again_note = [c for c in after_again if c["source"] == "ai_note"]
    assert [(c["category"], c["summary"], c["detail"]) for c in again_note] == [
        (c["category"], c["summary"], c["detail"]) for c in ai_note
    ]
    assert {c["id"] for c in again_note}.isdisjoint({c["id"] for c in ai_note})

    # a consumption chain writes its own source and leaves the note's clues alone
    consumption = _run_job("consumption_chain_job", resources, instance, "1-100", tags={"zqyy/trigger": "consumption"})
    assert consumption.success and metadata(consumption, "app8_consolidation")["clue_source"] == "ai_consumption"
    final = clues()
    assert [c for c in final if c["source"] in ("manual", "ai_note")] == [
        c for c in after_again if c["source"] in ("manual", "ai_note")
    ]
    assert sum(c["source"] == "ai_consumption" for c in final) > 0


def test_chains_run_as_one_run_each(venue, resources, fake) -> None:
    instance = _instance(["1-100"], ["1-7_100"])
    consumption = _run_job("consumption_chain_job", resources, instance, "1-100", tags={"zqyy/trigger": "consumption"})
    assert consumption.success
    assert {e.asset_key.to_user_string() for e in consumption.get_asset_materialization_events()} == {
        "app3_clue",
        "app8_consolidation",
        "app7_customer",
    }
    app7 = cache_rows(venue, "app7_customer")[0]
    assert validate_answer("app7_customer", app7["result_json"]).segment
    # App7's prompt carried App8's clues
    [app7_request] = fake.requests("app7_customer")
    assert '"clues_source":"app8_consolidation"' in app7_request["prompt"]

    task = _run_job("task_chain_job", resources, instance, "1-7_100", tags={"zqyy/trigger": "task_assigned"})
    assert task.success
    assert [r["target_id"] for r in cache_rows(venue, "app4_analysis")] == ["7_100"]
    [app5] = cache_rows(venue, "app5_tactics")
    assert (app5["target_id"], app5["triggered_by"]) == ("7_100", "task_assigned")
    assert metadata(task, "app5_tactics")["member_id"] == 100
    assert fake.count() == 5


def test_nothing_to_ask_is_a_skip_not_a_call(venue, resources, fake) -> None:
    result = materialize([app6_note], resources, instance=_instance(["1-101"]), partition_key="1-101")
    assert result.success
    md = metadata(result, "app6_note")
    assert (md["status"], md["calls"], md["sites_skipped"], md["skip_reason"]) == (
        "skipped",
        0,
        1,
        "the member has no notes",
    )
    assert fake.count() == 0 and cache_rows(venue) == []


def test_offline_provider_answers_without_the_network(venue, resources, make_llm, fake) -> None:
    offline = {**resources, "llm": make_llm(provider="offline")}
    instance = _instance(["1-100"])
    result = materialize([app3_clue, app8_consolidation], offline, instance=instance, partition_key="1-100")
    assert result.success
    md = metadata(result, "app3_clue")
    assert (md["provider"], md["model"], md["tokens_in"], md["calls"]) == ("offline", "offline-analyst-1", 0, 1)
    assert md["prompt_version"].startswith("offline:app3-p1+sys.")
    rows = cache_rows(venue)
    assert [r["cache_type"] for r in rows] == ["app3_clue", "app8_consolidation"]
    assert all(r["provider"] == "offline" and r["result_json"]["_provider"] == "offline" for r in rows)
    assert fake.count() == 0
    # a later dashscope run does not take the offline answer for its own
    online = materialize([app3_clue], resources, instance=instance, partition_key="1-100")
    assert metadata(online, "app3_clue")["calls"] == 1 and fake.count("app3_clue") == 1


def _materialized(result: dg.ExecuteInProcessResult) -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    for event in result.get_asset_materialization_events():
        keys.setdefault(event.asset_key.to_user_string(), set()).add(event.partition)
    return keys


def _member_of(prompt: dict) -> int | None:
    member = prompt.get("member")
    return member.get("member_id") if isinstance(member, dict) else None


RANGE = {RANGE_START_TAG: "1-100", RANGE_END_TAG: "2-200"}


def test_a_range_run_answers_every_member_of_the_range_in_one_run(venue, resources, fake) -> None:
    instance = _instance(["1-100", "1-101", "2-200"])
    fake.script("*", latency_ms=150)
    result = _run_job("consumption_chain_job", resources, instance, None, tags={**RANGE, "zqyy/trigger": "consumption"})
    assert result.success
    everyone = {"1-100", "1-101", "2-200"}
    assert _materialized(result) == {"app3_clue": everyone, "app8_consolidation": everyone, "app7_customer": everyone}
    for partition in everyone:  # each partition records its own figures
        md = metadata_of_partition(result, "app3_clue", partition)
        assert (md["calls"], md["answers_written"], md["status"]) == (1, 1, "answered")
        assert f"{md['site_id']}-{md['target_id']}" == partition
    assert {(r["site_id"], r["target_id"]) for r in cache_rows(venue, "app7_customer")} == {
        (1, "100"),
        (1, "101"),
        (2, "200"),
    }
    assert metadata_of_partition(result, "app8_consolidation", "1-100")["clues_written"] > 0
    # the three calls of each app went out together, not one after another
    app3 = sorted(r["at"] for r in fake.requests("app3_clue"))
    assert app3[-1] - app3[0] < 0.15


def metadata_of_partition(result: dg.ExecuteInProcessResult, asset: str, partition: str) -> dict[str, Any]:
    [event] = [
        e
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == asset and e.partition == partition
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_one_failing_member_fails_the_step_after_the_others_are_cached(venue, resources, make_llm, fake) -> None:
    instance = _instance(["1-100", "1-101", "2-200"])
    # Content inspection refusing one member's data: permanent, so no step retry either.
    inspection = (400, "DataInspectionFailed")
    with SiteFailingProxy(fake.url, lambda prompt: _member_of(prompt) == 101, error=inspection) as proxy:
        failing = {**resources, "llm": make_llm(base_url=proxy.base_url)}
        result = _run_job(
            "consumption_chain_job", failing, instance, None, tags={**RANGE, "zqyy/trigger": "consumption"}
        )
    # App3 and App7 were refused for member 101 (App8 had nothing to consolidate for it); the rest ran.
    assert not result.success and proxy.failed == 2
    failure = result.failure_data_for_node("member_apps")
    assert "app3_clue: 1 of 3 target(s) failed: 1-101" in failure.error.message
    assert "app7_customer: 1 of 3 target(s) failed: 1-101" in failure.error.message
    assert failure.user_failure_data.metadata["failed_partitions"].value == "1-101"
    assert failure.user_failure_data.metadata["app_name"].value == "app3_clue,app7_customer"
    assert _materialized(result) == {
        "app3_clue": {"1-100", "2-200"},
        "app8_consolidation": {"1-100", "1-101", "2-200"},  # 1-101: skipped, saying why
        "app7_customer": {"1-100", "2-200"},
    }
    skipped = metadata_of_partition(result, "app8_consolidation", "1-101")
    assert (skipped["status"], skipped["upstream_failed"]) == ("skipped", "app3_clue")
    assert skipped["skip_reason"] == "neither App3 nor App6 has clues for the member (app3_clue failed in this run)"
    assert {r["target_id"] for r in cache_rows(venue, "app3_clue")} == {"100", "200"}  # the others are cached

    # Again, the upstream healthy: only the failed member is asked; the others are memo hits.
    calls_before = fake.count("app3_clue")
    again = _run_job("consumption_chain_job", resources, instance, None, tags={**RANGE, "zqyy/trigger": "consumption"})
    assert again.success
    assert fake.count("app3_clue") - calls_before == 1
    assert [metadata_of_partition(again, "app3_clue", p)["calls"] for p in ("1-100", "1-101", "2-200")] == [0, 1, 0]


def test_a_step_retry_is_allowed_unless_every_failure_is_permanent() -> None:
    from zqyy_assets.core.answering import Outcome
    from zqyy_assets.core.llm.errors import TransientLLMError
    from zqyy_assets.core.partition_keys import MemberKey
    from zqyy_assets.defs.ai.targets import AppFailure, chain_failure

    refused = dg.Failure("refused", metadata={"error_code": "DataInspectionFailed"}, allow_retries=False)
    flaky = TransientLLMError("upstream 503", code="ServiceUnavailable")

    def failed(member_id: int, error: BaseException) -> tuple[MemberKey, Outcome]:
        return MemberKey(1, member_id), Outcome(
            1, "app3_clue", str(member_id), "failed", error=error, reason=str(error)
        )

    only_permanent = [failed(100, refused)]
    mixed = [failed(100, refused), failed(101, flaky)]
    assert chain_failure([AppFailure("app3_clue", only_permanent, only_permanent)]).allow_retries is False
    failure = chain_failure([AppFailure("app3_clue", mixed, mixed)])
    assert failure.allow_retries is True
    assert failure.metadata["error_code"].value == "DataInspectionFailed,ServiceUnavailable"
    assert failure.metadata["failed_partitions"].value == "1-100,1-101"
