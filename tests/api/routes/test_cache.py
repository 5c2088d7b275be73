"""Cached reads: newest valid answer, history, finance insights, retention clues."""

from fastapi.testclient import TestClient
from psycopg.types.json import Jsonb

from tests.api.conftest import OTHER_SITE, SITE, put_cache, put_clue
from zqyy_assets.core import db


def test_latest_valid_answer_and_its_history(client: TestClient, db_url: str, staff) -> None:
    put_cache(db_url, site=SITE, app="app7_customer", target="42", result={"v": 1}, created_at="2026-01-01T10:00+08")
    newest_valid = put_cache(
        db_url,
        site=SITE,
        app="app7_customer",
        target="42",
        result={"v": 2},
        score=8.5,
        created_at="2026-01-02T10:00+08",
    )
    put_cache(
        db_url,
        site=SITE,
        app="app7_customer",
        target="42",
        result={"v": 3},
        status="invalidated",
        created_at="2026-01-03T10:00+08",
    )
    put_cache(
        db_url, site=OTHER_SITE, app="app7_customer", target="42", result={"v": 99}, created_at="2026-02-01T10:00+08"
    )

    latest = client.get("/api/ai/cache/app7_customer/42", headers=staff)
    assert latest.status_code == 200
    body = latest.json()
    assert (body["id"], body["result"], body["score"], body["status"]) == (newest_valid, {"v": 2}, 8.5, "valid")
    assert body["app_type"] == "app7_customer" and body["site_id"] == SITE

    history = client.get("/api/ai/cache/app7_customer/42/history?limit=2", headers=staff).json()
    assert history["total"] == 3
    assert [(i["result"]["v"], i["status"]) for i in history["items"]] == [(3, "invalidated"), (2, "valid")]
    page2 = client.get("/api/ai/cache/app7_customer/42/history?limit=2&offset=2", headers=staff).json()
    assert [i["result"]["v"] for i in page2["items"]] == [1] and page2["total"] == 3
    past = client.get("/api/ai/cache/app7_customer/42/history?limit=2&offset=10", headers=staff).json()
    assert past["items"] == [] and past["total"] == 3


def test_nothing_cached_is_404_with_a_message(client: TestClient, db_url: str, staff) -> None:
    put_cache(db_url, site=SITE, app="app3_clue", target="5", result={}, status="invalidated")
    response = client.get("/api/ai/cache/app3_clue/5", headers=staff)
    assert response.status_code == 404
    assert response.json() == {"detail": "no cached answer of app3_clue for target '5' at site 1"}
    assert client.get("/api/ai/cache/app3_clue/5/history", headers=staff).status_code == 200
    assert client.get("/api/ai/cache/app3_clue/6/history", headers=staff).status_code == 404
    response = client.get("/api/ai/finance/insights?time_dimension=this_week&area=ktv", headers=staff)
    assert response.status_code == 404 and "this_week / ktv" in response.json()["detail"]
    response = client.get("/api/ai/members/5/clues", headers=staff)
    assert response.status_code == 404 and "member 5" in response.json()["detail"]


def test_bad_app_or_target_is_422(client: TestClient, staff) -> None:
    for path, says in [
        ("/api/ai/cache/app9_magic/5", "app_type"),
        ("/api/ai/cache/app3_clue/abc", "member id"),
        ("/api/ai/cache/app4_analysis/12", "{assistant_id}_{member_id}"),
        ("/api/ai/cache/app2_finance/this_month__vip", "area all"),
        ("/api/ai/cache/app2a_finance_area/this_month__all", "other than 'all'"),
        ("/api/ai/cache/app2a_finance_area/next_year__vip", "{time_dimension}__{area}"),
        ("/api/ai/cache/app3_clue/1;drop", "target_id"),
    ]:
        response = client.get(path, headers=staff)
        assert response.status_code == 422, path
        assert says in str(response.json()["detail"]), (path, response.json())


def test_finance_insights_by_time_dimension_and_area(client: TestClient, db_url: str, staff) -> None:
    put_cache(db_url, site=SITE, app="app2_finance", target="this_month__all", result={"insights": [{"t": "全店"}]})
    put_cache(
        db_url, site=SITE, app="app2a_finance_area", target="this_month__vip", result={"insights": [{"t": "包厢"}]}
    )
    whole = client.get("/api/ai/finance/insights?time_dimension=this_month&area=all", headers=staff).json()
    assert (whole["app_type"], whole["target_id"], whole["insights"]) == (
        "app2_finance",
        "this_month__all",
        [{"t": "全店"}],
    )
    vip = client.get("/api/ai/finance/insights?time_dimension=this_month&area=vip", headers=staff).json()
    assert (vip["app_type"], vip["insights"]) == ("app2a_finance_area", [{"t": "包厢"}])
    response = client.get("/api/ai/finance/insights?time_dimension=next_year&area=vip", headers=staff)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "time_dimension"]


def test_member_clues(client: TestClient, db_url: str, staff) -> None:
    put_clue(db_url, site=SITE, member=7, summary="📅 周末下午常来")
    put_clue(db_url, site=SITE, member=7, summary="🎱 喜欢斯诺克", source="manual")
    put_clue(db_url, site=OTHER_SITE, member=7, summary="别的门店")
    body = client.get("/api/ai/members/7/clues", headers=staff).json()
    assert body["total"] == 2
    assert {c["summary"] for c in body["items"]} == {"📅 周末下午常来", "🎱 喜欢斯诺克"}
    assert {c["source"] for c in body["items"]} == {"ai_consumption", "manual"}


def test_latest_answer_body_built_by_postgres_matches_the_model(client: TestClient, db_url: str, staff) -> None:
    """The latest-answer body comes straight from Postgres: it must equal CacheEntry of the same row."""
    from api.schemas.cache import CacheEntry

    put_cache(
        db_url,
        site=SITE,
        app="app6_note",
        target="9",
        result={"score": 7, "clues": [{"summary": "爱喝红茶"}]},
        score=7.25,
        run_id="run-1",
    )
    body = client.get("/api/ai/cache/app6_note/9", headers=staff).json()
    history_item = client.get("/api/ai/cache/app6_note/9/history", headers=staff).json()["items"][0]
    assert CacheEntry.model_validate(body) == CacheEntry.model_validate(history_item)
    assert set(body) == set(CacheEntry.model_fields)


def test_reads_return_the_answer_with_its_references(client: TestClient, db_url: str, staff) -> None:
    refs = {"site_id": SITE, "time_dimension": "this_week", "area": "all", "tables": [], "sources": []}
    answer = {"insights": [{"t": "全店"}], "_references": refs}
    put_cache(db_url, site=SITE, app="app2_finance", target="this_week__all", result=answer)
    assert client.get("/api/ai/cache/app2_finance/this_week__all", headers=staff).json()["result"] == answer
    history = client.get("/api/ai/cache/app2_finance/this_week__all/history", headers=staff).json()
    assert [i["result"] for i in history["items"]] == [answer]
    insights = client.get("/api/ai/finance/insights?time_dimension=this_week&area=all", headers=staff).json()
    assert (insights["insights"], insights["result"]) == ([{"t": "全店"}], answer)


def test_an_ungrounded_answer_is_in_the_history_but_the_previous_good_one_is_served(
    client: TestClient, db_url: str, staff
) -> None:
    good = put_cache(db_url, site=SITE, app="app2_finance", target="last_week__all", result={"insights": [{"t": "好"}]})
    flagged = put_cache(
        db_url,
        site=SITE,
        app="app2_finance",
        target="last_week__all",
        result={"insights": [{"t": "编造"}]},
        status="ungrounded",
        created_at="2099-01-01T00:00+00",
    )
    verdict = {
        "version": 1,
        "grounded": False,
        "numbers": 4,
        "ungrounded_count": 1,
        "ungrounded": [
            {"number": "¥987,654.32", "sentence": "本期营业额 ¥987,654.32。", "field": "insights.0.content"}
        ],
    }
    with db.transaction(db_url) as conn:
        conn.execute("UPDATE biz.ai_cache SET grounding = %s WHERE id = %s", (Jsonb(verdict), flagged))
    put_cache(db_url, site=SITE, app="app2_finance", target="this_week__all", result={}, status="ungrounded")

    latest = client.get("/api/ai/cache/app2_finance/last_week__all", headers=staff).json()
    assert (latest["id"], latest["status"], latest["grounding"]) == (good, "valid", None)
    insights = client.get("/api/ai/finance/insights?time_dimension=last_week&area=all", headers=staff).json()
    assert insights["insights"] == [{"t": "好"}]
    history = client.get("/api/ai/cache/app2_finance/last_week__all/history", headers=staff).json()
    assert [(i["id"], i["status"], i["grounding"]) for i in history["items"]] == [
        (flagged, "ungrounded", verdict),
        (good, "valid", None),
    ]
    # only an ungrounded answer: nothing to serve
    assert client.get("/api/ai/cache/app2_finance/this_week__all", headers=staff).status_code == 404
