import dagster as dg

from tests.defs.ai.venue import cached_answer
from zqyy_assets.core import cache, db
from zqyy_assets.core.partition_keys import all_app2_keys
from zqyy_assets.defs.ai import checks
from zqyy_assets.defs.ai.assets import ai_assets
from zqyy_assets.defs.ai.resources import LLMResource
from zqyy_assets.defs.ods.assets import ods_assets
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource


def _run_check(db_url: str, name: str) -> dg.AssetCheckEvaluation:
    [check] = [c for c in checks.ai_checks if name in {k.name for k in c.check_keys}]
    result = dg.materialize(
        [*ods_assets, *ai_assets, check],
        selection=dg.AssetSelection.checks(check),
        resources={
            "postgres": PostgresResource(database_url=db_url),
            "venue_calendar": VenueCalendarResource(),
            "llm": LLMResource(database_url=db_url, provider="offline"),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def test_answers_valid_check_finds_a_row_that_no_longer_validates(db_url: str) -> None:
    good = {"clues": [{"category": "消费习惯", "summary": "周末来"}]}
    with db.connect(db_url, autocommit=True) as conn:
        cached_answer(conn, "app3_clue", "100", good)
        cached_answer(conn, "app3_clue", "100", {"clues": "none"})  # history is checked too
        bad = cached_answer(conn, "app3_clue", "101", {"summary": "no clues"})
        gone = cached_answer(conn, "app3_clue", "102", {"broken": True})
        conn.execute("UPDATE biz.ai_cache SET status = 'invalidated' WHERE id = %s", (gone.id,))
        cached_answer(conn, "app6_note", "100", {"nothing": 1})  # another app's row is its own check's business

    evaluation = _run_check(db_url, "app3_clue_answers_valid")
    assert not evaluation.passed
    md = {k: v.value for k, v in evaluation.metadata.items()}
    assert (md["rows_checked"], md["invalid_rows"]) == (3, 2)
    assert f"row {bad.id} site 1 app3_clue 101: clues: Field required" in md["first_invalid"]

    with db.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE biz.ai_cache SET status = 'invalidated' WHERE cache_type = 'app3_clue' AND result_json <> %s",
            (cache.canonical_json(good),),
        )
    assert _run_check(db_url, "app3_clue_answers_valid").passed


def test_coverage_counts_72_per_active_site_with_figures(db_url: str) -> None:
    with db.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO ods.sites (site_id, name) VALUES (1, 'a'), (2, 'b'), (3, 'new')")
        conn.execute("INSERT INTO ods.sites (site_id, name, is_active) VALUES (4, 'closed', false)")
        conn.execute("""INSERT INTO dws.finance_area_daily (site_id, biz_date, area_code, revenue, table_fee,
                            assistant_fee, goods_amount, discount, orders, table_minutes, member_revenue, member_orders)
                        SELECT s, '2026-03-01', 'all', 1, 1, 0, 0, 0, 1, 1, 0, 0 FROM unnest(ARRAY[1, 2, 4]) s""")
        for key in all_app2_keys():
            cached_answer(conn, key.app_name, key.target_id, {"insights": [{"title": "t", "content": "c"}]}, site_id=1)
            if key.area != "ktv":
                cached_answer(
                    conn, key.app_name, key.target_id, {"insights": [{"title": "t", "content": "c"}]}, site_id=2
                )
        result = checks.app2_coverage_result(conn)
    assert not result.passed
    md = {k: v.value for k, v in result.metadata.items()}
    assert (md["active_sites"], md["sites_complete"], md["sites_incomplete"], md["answers_missing"]) == (3, 1, 1, 8)
    assert md["sites_without_finance_data"] == "3"
    assert "| 1 | 72 | 72 | - |" in md["coverage"] and "| 2 | 64 | 72 | last_3_months__ktv" in md["coverage"]
