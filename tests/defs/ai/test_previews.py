"""Answer previews in the AI materializations' metadata, and memo hits counted in Postgres,
through Dagster's materialize with the offline analyst."""

from typing import Any

import dagster as dg

from tests.defs.ai.conftest import cache_rows, materialize, metadata
from zqyy_assets.core import db
from zqyy_assets.core.answer_preview import PREVIEW_MAX_CHARS
from zqyy_assets.defs.ai.assets import app2_finance, app3_clue, app4_analysis, app5_tactics, app8_consolidation


def _offline(resources: dict[str, Any], make_llm) -> dict[str, Any]:
    return {**resources, "llm": make_llm(provider="offline")}


def _instance() -> dg.DagsterInstance:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("members", ["1-100"])
    instance.add_dynamic_partitions("assistant_members", ["1-7_100"])
    return instance


def _answer(db_url: str, app: str) -> dict:
    [row] = cache_rows(db_url, app)
    return row["result_json"]


def test_member_and_assistant_materializations_preview_their_answers(venue, resources, make_llm) -> None:
    offline, instance = _offline(resources, make_llm), _instance()
    members = materialize([app3_clue, app8_consolidation], offline, instance=instance, partition_key="1-100")
    assert members.success
    for app in ("app3_clue", "app8_consolidation"):
        preview = metadata(members, app)["preview"]
        clues = _answer(venue, app)["clues"]
        assert clues, "the offline analyst finds clues in the demo member"
        assert preview.splitlines()[0] == f"- {clues[0]['emoji']} **{clues[0]['category']}**: {clues[0]['summary']}"
        assert len(preview) <= PREVIEW_MAX_CHARS

    pair = materialize([app4_analysis, app5_tactics], offline, instance=instance, partition_key="1-7_100")
    assert pair.success
    tactics = _answer(venue, "app5_tactics")
    preview = metadata(pair, "app5_tactics")["preview"]
    assert preview.splitlines()[0] == f"> {tactics['opening_line']}"  # App5's opening line first
    assert preview.splitlines()[1].startswith(f"Points: {tactics['talking_points'][0]}")
    analysis = _answer(venue, "app4_analysis")
    assert metadata(pair, "app4_analysis")["preview"].startswith(f"**{analysis['relationship_level']}**: ")


def test_an_app2_partition_previews_the_first_sites_insights(venue, resources, make_llm) -> None:
    result = materialize([app2_finance], _offline(resources, make_llm), partition_key="all|this_month")
    assert result.success
    preview = metadata(result, "app2_finance")["preview"]
    rows = {r["site_id"]: r for r in cache_rows(venue, "app2_finance")}
    first = rows[min(rows)]["result_json"]["insights"][0]
    lines = preview.splitlines()
    assert lines[0] == f"**site {min(rows)}**" + (f" (and {len(rows) - 1} more site(s))" if len(rows) > 1 else "")
    assert lines[1].startswith(f"- **{first['title']}**")
    assert len(preview) <= PREVIEW_MAX_CHARS


def test_a_memo_hit_is_counted_with_the_tokens_it_saved(venue, resources) -> None:
    instance = _instance()
    assert materialize([app3_clue], resources, instance=instance, partition_key="1-100").success  # a call
    [row] = cache_rows(venue, "app3_clue")
    for _ in range(2):  # unchanged input: two hits, no call
        hit = materialize([app3_clue], resources, instance=instance, partition_key="1-100")
        assert metadata(hit, "app3_clue")["cache_hits"] == 1
    with db.connect(venue) as conn:
        counted = conn.execute(
            """SELECT site_id, app_name, count(*) AS hits, sum(tokens_in_avoided + tokens_out_avoided) AS tokens_saved
               FROM biz.ai_memo_hits GROUP BY site_id, app_name"""
        ).fetchall()
    # Each hit avoided a call priced at the app's recent average: here its one call.
    assert counted == [
        {"site_id": 1, "app_name": "app3_clue", "hits": 2, "tokens_saved": 2 * (row["tokens_in"] + row["tokens_out"])}
    ]
    assert row["tokens_in"] > 0
