"""Each app's prompt from the AI venue, against figures worked out by hand from tests/defs/ai/venue.py.

The venue is shared by the module; tests that add cache rows do it in a transaction they roll back.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import pytest

from tests.defs.ai.venue import cached_answer, shared_ai_venue
from zqyy_assets.core import cache, db, prompts
from zqyy_assets.core.partition_keys import AssistantMemberKey, MemberKey


@pytest.fixture(scope="module")
def shared_venue(pg_server_url: str, template_db: str) -> Iterator[str]:
    """One AI venue for the module's tests, in a database of its own (tests that write roll back)."""
    with shared_ai_venue(pg_server_url, template_db) as url:
        yield url


@contextmanager
def rolled_back(url: str) -> Iterator[db.DictConnection]:
    with db.connect(url) as conn:
        try:
            yield conn
        finally:
            conn.rollback()


@pytest.mark.parametrize(
    ("dimension", "current", "comparison"),
    [
        ("this_week", ("2026-03-30", "2026-03-31"), ("2026-03-23", "2026-03-24")),
        ("last_week", ("2026-03-23", "2026-03-29"), ("2026-03-16", "2026-03-22")),
        ("this_month", ("2026-03-01", "2026-03-31"), ("2026-02-01", "2026-02-28")),  # day clamped to February
        ("last_month", ("2026-02-01", "2026-02-28"), ("2026-01-01", "2026-01-31")),
        ("this_quarter", ("2026-01-01", "2026-03-31"), ("2025-10-01", "2025-12-31")),
        ("last_quarter", ("2025-10-01", "2025-12-31"), ("2025-07-01", "2025-09-30")),
        ("last_3_months", ("2026-01-01", "2026-03-31"), ("2025-10-01", "2025-12-31")),
        ("last_6_months", ("2025-10-01", "2026-03-31"), ("2025-04-01", "2025-09-30")),
    ],
)
def test_time_windows_and_comparison_periods(dimension: str, current: tuple, comparison: tuple) -> None:
    pair = prompts.period_pair(dimension, date(2026, 3, 31))  # a Tuesday, the last day of a quarter
    assert (pair.current.start.isoformat(), pair.current.end.isoformat()) == current
    assert (pair.comparison.start.isoformat(), pair.comparison.end.isoformat()) == comparison


def test_app2_whole_site_this_month(shared_venue: str) -> None:
    with rolled_back(shared_venue) as conn:
        finance = prompts.load_site_finance(conn, 1)
    p = prompts.build_app2_prompt(finance, "this_month", "all")
    assert p["as_of_date"] == "2026-03-03" and p["site"] == {"site_id": 1, "site_name": "测试门店"}
    assert (p["period"]["start"], p["period"]["end"], p["period"]["to_date"]) == ("2026-03-01", "2026-03-03", True)
    assert (p["comparison"]["start"], p["comparison"]["end"]) == ("2026-02-01", "2026-02-03")
    cur, prev = p["period"]["metrics"], p["comparison"]["metrics"]
    # 235.50 + 90.00 + 100.00 on 2 March (two of them settled after midnight), 320.00 on 3 March
    assert (cur["revenue"], cur["orders"], cur["table_fee"], cur["assistant_fee"]) == (745.5, 4, 550.0, 90.0)
    assert (cur["goods_amount"], cur["discount"], cur["member_revenue"], cur["member_share"]) == (
        135.5,
        30.0,
        655.5,
        0.8793,
    )
    assert (cur["table_minutes"], cur["table_hours"], cur["daily_avg_revenue"], cur["active_days"]) == (
        380,
        6.33,
        248.5,
        2,
    )
    assert (cur["recharge_amount"], cur["recharge_count"]) == (1000.0, 1)
    assert (prev["revenue"], prev["orders"], prev["recharge_amount"]) == (150.0, 1, 0.0)
    assert p["change_pct"]["revenue"] == 397.0 and p["change_pct"]["assistant_fee"] is None
    assert [(b["area"], b["current"], b["previous"]) for b in p["area_breakdown"]] == [
        ("hallA", 325.5, 150.0),
        ("vip", 420.0, 0.0),
    ]  # areas idle in both periods are left out
    assert p["top_movers"][0] == {
        "name": "VIP包厢营业额",
        "metric": "revenue",
        "area": "vip",
        "current": 420.0,
        "previous": 0.0,
        "change": 420.0,
        "change_pct": None,
    }
    assert p["best_days"][0] == {"date": "2026-03-02", "weekday": "周一", "revenue": 425.5, "orders": 3}


def test_app2_area_filters(shared_venue: str) -> None:
    with rolled_back(shared_venue) as conn:
        site1, site2 = prompts.load_site_finance(conn, 1), prompts.load_site_finance(conn, 2)
    hall = prompts.build_app2_prompt(site1, "this_month", "hall")  # hallA + hallB + hallC
    assert (hall["period"]["metrics"]["revenue"], hall["comparison"]["metrics"]["revenue"]) == (325.5, 150.0)
    assert "recharge_amount" not in hall["period"]["metrics"]  # recharges belong to no area
    assert [b["area"] for b in hall["area_breakdown"]] == ["hallA"]
    vip = prompts.build_app2_prompt(site1, "this_week", "vip")
    assert (vip["period"]["start"], vip["period"]["metrics"]["revenue"], vip["period"]["metrics"]["orders"]) == (
        "2026-03-02",
        420.0,
        2,
    )
    assert "area_breakdown" not in vip and vip["area_label"] == "VIP包厢"
    last_month = prompts.build_app2_prompt(site1, "last_month", "all")
    assert (last_month["period"]["metrics"]["revenue"], last_month["period"]["to_date"]) == (150.0, False)
    empty = prompts.build_app2_prompt(site1, "this_month", "ktv")
    assert empty["has_data"] is False and empty["period"]["metrics"]["revenue"] == 0.0
    # each site is as of its own latest business date
    assert site2.as_of == date(2026, 3, 2)
    s2 = prompts.build_app2_prompt(site2, "this_month", "all")
    assert (s2["period"]["metrics"]["revenue"], s2["period"]["metrics"]["orders"]) == (260.0, 2)
    assert prompts.build_app2_prompt(site2, "this_month", "snooker")["period"]["metrics"]["revenue"] == 200.0


def test_site_without_figures_has_no_finance(shared_venue: str) -> None:
    with rolled_back(shared_venue) as conn:
        conn.execute("INSERT INTO ods.sites (site_id, name) VALUES (9, '新店')")
        assert prompts.load_site_finance(conn, 9) is None


def test_app3_member_history(shared_venue: str) -> None:
    with rolled_back(shared_venue) as conn:
        p = prompts.build_app3_prompt(conn, MemberKey(1, 100))
    assert p["member"] == {
        "member_id": 100,
        "member_name": "张三",
        "gender": None,
        "member_level": "普通",
        "registered_on": "2026-01-01",
    }
    profile = p["profile"]
    assert (profile["as_of_date"], profile["recency_days"], profile["visits_30d"], profile["spend_30d"]) == (
        "2026-03-03",
        1,
        2,
        335.5,
    )
    assert (profile["spend_trend"], profile["favourite_area"], profile["favourite_time_slot"]) == (
        "new",
        "hallA",
        "晚上",
    )
    assert (profile["favourite_assistant_id"], profile["favourite_assistant_name"]) == (7, "小美")
    assert [(s["settled_at"], s["area"], s["total"], s["assistants"]) for s in p["recent_settlements"]] == [
        ("2026-03-03 05:59", "vip", 100.0, None),
        ("2026-03-02 22:01", "hallA", 235.5, "小美"),
    ]
    assert p["assistants"] == [
        {
            "assistant_id": 7,
            "assistant_name": "小美",
            "service_count": 1,
            "service_minutes": 60,
            "service_fees": 90.0,
            "last_service_at": "2026-03-02 21:00",
        }
    ]
    assert p["recent_recharges"] == []


def test_times_are_written_in_the_time_zone_the_caller_passes(shared_venue: str) -> None:
    # The venue's zone is a setting (VENUE_TIMEZONE): the same settlements, read by a venue in UTC.
    with rolled_back(shared_venue) as conn:
        p = prompts.build_app3_prompt(conn, MemberKey(1, 100), tz="UTC")
        pair = prompts.build_app4_prompt(conn, AssistantMemberKey(1, 7, 100), tz="UTC")
    assert [s["settled_at"] for s in p["recent_settlements"]] == ["2026-03-02 21:59", "2026-03-02 14:01"]
    assert p["profile"]["last_visit_at"] == "2026-03-02 21:59"
    assert (pair["relation"]["first_service_at"], pair["relation"]["last_service_at"]) == (
        "2026-03-02 12:00",
        "2026-03-02 13:00",
    )


def test_app3_recharges_and_members_without_visits(shared_venue: str) -> None:
    with rolled_back(shared_venue) as conn:
        p = prompts.build_app3_prompt(conn, MemberKey(1, 101))
        assert p["recent_recharges"] == [
            {"recharged_at": "2026-03-03 12:00", "amount": 1000.0, "bonus": 100.0, "pay_method": "微信"}
        ]
        with pytest.raises(prompts.NothingToAsk):
            prompts.build_app3_prompt(conn, MemberKey(1, 102))  # registered, never visited
        with pytest.raises(prompts.NothingToAsk):
            prompts.build_app3_prompt(conn, MemberKey(1, 999))  # no such member


def test_app6_newest_note_with_earlier_ones(shared_venue: str) -> None:
    with rolled_back(shared_venue) as conn:
        p = prompts.build_app6_prompt(conn, MemberKey(1, 100))
        with pytest.raises(prompts.NothingToAsk):
            prompts.build_app6_prompt(conn, MemberKey(1, 101))
    assert (p["note_content"], p["noted_by_name"], p["noted_at"]) == ("反映VIP包厢空调太冷", "前台", "2026-03-03 06:30")
    assert p["earlier_notes"] == [
        {"content": "喜欢周末晚上来打中式八球，常带朋友一起", "noted_by_name": "小美", "noted_at": "2026-03-02 23:00"}
    ]
    assert p["member_summary"]["visits_90d"] == 2


def test_app6_analyses_a_given_note_with_the_members_notes_as_context(shared_venue: str) -> None:
    given = prompts.GivenNote("最近想办张储值卡，问有没有活动", "王教练", datetime(2026, 3, 4, 2, 15, tzinfo=UTC))
    # Through the run tag, as run/app6_note hands it to the asset.
    build = prompts.target_builder("app6_note", {"zqyy/note": given.to_tag()})
    assert prompts.target_builder("app6_note", {}) is prompts.build_app6_prompt
    with rolled_back(shared_venue) as conn:
        p = build(conn, MemberKey(1, 100), tz="Asia/Shanghai")
        # A member with no note in ODS can still have a given note analysed.
        lone = build(conn, MemberKey(1, 101), tz="Asia/Shanghai")
    assert (p["note_id"], p["note_content"], p["noted_by_name"], p["noted_at"]) == (
        None,
        "最近想办张储值卡，问有没有活动",
        "王教练",
        "2026-03-04 10:15",
    )
    assert [n["content"] for n in p["earlier_notes"]] == [
        "反映VIP包厢空调太冷",
        "喜欢周末晚上来打中式八球，常带朋友一起",
    ]
    assert (lone["note_content"], lone["earlier_notes"]) == ("最近想办张储值卡，问有没有活动", [])
    with pytest.raises(ValueError, match="not a note"):
        prompts.target_builder("app6_note", {"zqyy/note": "{}"})


def test_app8_reads_latest_app3_and_app6_clues_and_manual_ones(shared_venue: str) -> None:
    clue = {"category": "消费习惯", "emoji": "📅", "summary": "周末晚上来", "detail": "d"}
    with rolled_back(shared_venue) as conn:
        with pytest.raises(prompts.NothingToAsk):
            prompts.build_app8_prompt(conn, MemberKey(1, 100))
        cached_answer(conn, "app3_clue", "100", {"clues": [{**clue, "summary": "旧线索"}]})
        cached_answer(conn, "app3_clue", "100", {"clues": [clue]})
        cached_answer(conn, "app3_clue", "100", {"clues": [{**clue, "summary": "作废"}]})
        conn.execute("UPDATE biz.ai_cache SET status = 'invalidated' WHERE result_json::text LIKE '%作废%'")
        conn.execute("""INSERT INTO biz.member_retention_clue
                            (site_id, member_id, category, summary, source, recorded_by_name)
                        VALUES (1, 100, '客户基础', '🎂 3月生日', 'manual', '小美')""")
        p = prompts.build_app8_prompt(conn, MemberKey(1, 100))
    assert p["app3_clues"] == [clue] and p["app6_clues"] == [] and p["app6_generated_at"] is None
    assert p["manual_clues"] == [
        {"category": "客户基础", "summary": "🎂 3月生日", "detail": "", "recorded_by_name": "小美"}
    ]


def test_app8_references_name_the_last_good_source_answers(shared_venue: str) -> None:
    clue = {"category": "消费习惯", "summary": "周末晚上来"}
    with rolled_back(shared_venue) as conn:
        good = cached_answer(conn, "app3_clue", "100", {"clues": [clue]})
        cached_answer(conn, "app3_clue", "100", {"clues": [{**clue, "summary": "作废"}]})
        conn.execute("UPDATE biz.ai_cache SET status = 'invalidated' WHERE result_json::text LIKE '%作废%'")
        refs = prompts.References()
        p = prompts.build_app8_prompt(conn, MemberKey(1, 100), refs=refs)
    assert p["app3_clues"] == [clue]
    assert refs.as_json() == {
        "site_id": 1,
        "member_id": 100,
        "as_of_date": "2026-03-03",
        "tables": [
            {"table": "ods.members", "rows": 1},
            {"table": "dws.member_profile", "rows": 1},
            {"table": "biz.member_retention_clue", "rows": 0},
        ],
        "sources": [
            {
                "app": "app3_clue",
                "target_id": "100",
                "cache_id": good.id,
                "generated_at": good.created_at.isoformat(),
            }
        ],
    }


def test_references_leave_the_prompt_unchanged(shared_venue: str) -> None:
    with rolled_back(shared_venue) as conn:
        for app, key in (("app3_clue", MemberKey(1, 100)), ("app4_analysis", AssistantMemberKey(1, 7, 100))):
            build = prompts.TARGET_BUILDERS[app]
            assert build(conn, key, refs=prompts.References()) == build(conn, key)


def test_app7_uses_consolidated_clues_else_app3(shared_venue: str) -> None:
    with rolled_back(shared_venue) as conn:
        cached_answer(conn, "app3_clue", "100", {"clues": [{"category": "c", "summary": "来自App3"}]})
        p = prompts.build_app7_prompt(conn, MemberKey(1, 100))
        assert (p["clues_source"], [c["summary"] for c in p["clues"]]) == ("app3_clue", ["来自App3"])
        cached_answer(
            conn,
            "app8_consolidation",
            "100",
            {"clues": [{"category": "c", "summary": "整合后", "providers": ["app3"]}]},
        )
        p = prompts.build_app7_prompt(conn, MemberKey(1, 100))
    assert p["clues_source"] == "app8_consolidation"
    assert p["clues"] == [{"category": "c", "summary": "整合后", "providers": ["app3"]}]
    assert p["profile"]["spend_30d"] == 335.5 and len(p["recent_settlements"]) == 2


def test_app4_assistant_member_relation(shared_venue: str) -> None:
    with rolled_back(shared_venue) as conn:
        p = prompts.build_app4_prompt(conn, AssistantMemberKey(1, 7, 100))
        with pytest.raises(prompts.NothingToAsk):  # never served, never tasked
            prompts.build_app4_prompt(conn, AssistantMemberKey(1, 7, 101))
    assert p["assistant"]["assistant_name"] == "小美"
    assert p["relation"] == {
        "services": 1,
        "minutes": 60,
        "fees": 90.0,
        "first_service_at": "2026-03-02 20:00",
        "last_service_at": "2026-03-02 21:00",
        "days_since_last_service": 1,
    }
    assert p["recent_services"] == [
        {"started_at": "2026-03-02 20:00", "service_minutes": 60, "fee": 90.0, "area_label": "大厅A区"}
    ]
    assert [(t["task_type"], t["status"], t["due_at"]) for t in p["tasks"]] == [
        ("回访", "assigned", "2026-03-05 10:00")
    ]
    assert [n["content"] for n in p["notes_by_assistant"]] == ["喜欢周末晚上来打中式八球，常带朋友一起"]
    assert p["other_assistants"] == []


def test_app5_builds_on_app4(shared_venue: str) -> None:
    key = AssistantMemberKey(1, 7, 100)
    with rolled_back(shared_venue) as conn:
        with pytest.raises(prompts.NothingToAsk):
            prompts.build_app5_prompt(conn, key)
        analysis = {
            "relationship_level": "weak",
            "summary": "关系尚浅",
            "strengths": ["s"],
            "risks": [],
            "_provider": "offline",
        }
        cached_answer(conn, "app4_analysis", "7_100", analysis)
        p = prompts.build_app5_prompt(conn, key)
    assert p["app4_result"] == {"relationship_level": "weak", "summary": "关系尚浅", "strengths": ["s"], "risks": []}
    assert p["open_task"]["task_type"] == "回访"
    assert [n["noted_by_name"] for n in p["recent_notes"]] == ["前台", "小美"]


def test_prompts_are_stable_json(shared_venue: str) -> None:
    with rolled_back(shared_venue) as conn:
        first = prompts.build_app3_prompt(conn, MemberKey(1, 100))
        again = prompts.build_app3_prompt(conn, MemberKey(1, 100))
    assert cache.canonical_json(first) == cache.canonical_json(again)
