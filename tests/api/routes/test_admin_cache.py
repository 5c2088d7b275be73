"""Cache invalidation and the App2 prewarm progress."""

from datetime import datetime

from fastapi.testclient import TestClient

from tests.api.conftest import OTHER_SITE, SITE, put_cache
from zqyy_assets.core import db


def _valid(db_url: str, site: int) -> set[tuple[str, str]]:
    with db.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT cache_type, target_id FROM biz.ai_cache WHERE site_id = %s AND status = 'valid'", (site,)
        )
        return {(r["cache_type"], r["target_id"]) for r in rows}


def test_invalidate_by_app_and_member(client: TestClient, db_url: str, admin) -> None:
    for app, target in [
        ("app3_clue", "7"),
        ("app7_customer", "7"),
        ("app4_analysis", "3_7"),
        ("app4_analysis", "7_8"),
        ("app3_clue", "8"),
        ("app3_clue", "17"),
    ]:
        put_cache(db_url, site=SITE, app=app, target=target, result={})
    put_cache(db_url, site=OTHER_SITE, app="app3_clue", target="7", result={})

    response = client.post("/api/admin/ai/cache/invalidate", json={"site_id": SITE, "member_id": 7}, headers=admin)
    assert response.json() == {"affected_count": 3}  # 7, 7 and 3_7; not 7_8 (assistant 7) nor 17
    assert _valid(db_url, SITE) == {("app4_analysis", "7_8"), ("app3_clue", "8"), ("app3_clue", "17")}
    response = client.post(
        "/api/admin/ai/cache/invalidate", json={"site_id": SITE, "app_type": "app3_clue"}, headers=admin
    )
    assert response.json() == {"affected_count": 2}
    response = client.post("/api/admin/ai/cache/invalidate", json={"site_id": SITE}, headers=admin)
    assert response.json() == {"affected_count": 1}
    assert _valid(db_url, OTHER_SITE) == {("app3_clue", "7")}
    bad = client.post("/api/admin/ai/cache/invalidate", json={"site_id": SITE, "app_type": "app1_chat"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "app_type"]


def test_prewarm_progress_counts_the_72_combinations(client: TestClient, db_url: str, admin) -> None:
    put_cache(
        db_url, site=SITE, app="app2_finance", target="this_month__all", result={}, created_at="2026-05-01T10:00+08"
    )
    put_cache(
        db_url,
        site=SITE,
        app="app2a_finance_area",
        target="this_month__vip",
        result={},
        created_at="2026-05-01T10:05+08",
    )
    put_cache(db_url, site=SITE, app="app2a_finance_area", target="last_month__ktv", result={}, status="invalidated")
    put_cache(db_url, site=SITE, app="app2a_finance_area", target="this_month__all", result={})  # wrong app for 'all'
    put_cache(db_url, site=OTHER_SITE, app="app2_finance", target="last_month__all", result={})
    body = client.get("/api/admin/ai/prewarm/progress", headers=admin).json()
    assert (body["total"], body["done"], len(body["missing"])) == (72, 2, 70)
    assert datetime.fromisoformat(body["last_updated"]) == datetime.fromisoformat("2026-05-01T10:05+08:00")
    missing = {m["target_id"] for m in body["missing"]}
    assert {"last_month__ktv", "last_month__all", "this_week__hall"} <= missing and "this_month__vip" not in missing
    assert body["missing"][0] == {"target_id": "this_month__hall", "time_dimension": "this_month", "area": "hall"}
    empty = client.get(f"/api/admin/ai/prewarm/progress?site_id={SITE}", headers=admin).json()
    assert empty["done"] == 2
