"""Batch run without Dagster: the estimate (memoized answers excluded, tokens from the ledger) and
the confirmation's 4xx answers. The launch itself is tested against a real Dagster webserver in
tests/api/services/test_admin_dagster.py."""

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import OTHER_SITE, SITE, bearer, put_call
from tests.defs.ai.venue import load_ai_venue
from zqyy_assets.core import answering, cache, db, prompts
from zqyy_assets.core import tokens as token_store
from zqyy_assets.core.partition_keys import MemberKey


@pytest.fixture
def venue(db_url: str) -> str:
    with db.transaction(db_url) as conn:
        load_ai_venue(conn)
    return db_url


def bearer_admin_of(client: TestClient, site: int) -> dict[str, str]:
    with db.transaction(client.app.state.settings.database_url) as conn:
        return bearer(token_store.issue(conn, subject=f"admin-{site}", role="admin", site_ids=[site]).token)


def _memoize(db_url: str, app: str, member_id: int, provider: str = "offline") -> None:
    """Cache an answer carrying the input hash the asset would compute now (as if it had just run)."""
    with db.connect(db_url, autocommit=True) as conn:
        key = MemberKey(SITE, member_id)
        ask = answering.Ask(
            SITE,
            app,
            key.target_id,
            prompts.MEMBER_BUILDERS[app](conn, key, tz="Asia/Shanghai"),
            prompts.PROMPT_VERSIONS[app],
        )
        prepared = answering.prepare(ask, provider)
        cache.insert_answer(
            conn,
            site_id=SITE,
            cache_type=app,
            target_id=key.target_id,
            input_hash=prepared.hash,
            prompt_version=prepared.version,
            result_json={"clues": []},
            score=None,
            triggered_by="test",
            provider=provider,
            model=None,
            tokens_in=0,
            tokens_out=0,
            latency_ms=None,
            dagster_run_id=None,
        )


def test_estimate_counts_only_calls_memoization_will_not_skip(client: TestClient, venue: str, admin) -> None:
    # The provider is part of the input hash: the API must hash with the pipeline's (here offline).
    client.app.state.llm.settings.provider = "offline"
    body = {"site_id": SITE, "app_types": ["app3_clue", "app7_customer"], "member_ids": [100, 101, 999]}
    first = client.post("/api/admin/ai/batch-run", json=body, headers=admin).json()
    # Members 100 and 101 have settlements: both apps asked for each; member 999 does not exist.
    assert (first["estimated_calls"], first["calls_by_app"], first["skipped_by_app"]) == (
        4,
        {"app3_clue": 2, "app7_customer": 2},
        {"app3_clue": 1, "app7_customer": 1},
    )
    assert first["estimated_tokens"] == 4 * 2000 and first["runs_planned"] == 2  # no ledger yet: 2,000 a call

    _memoize(venue, "app3_clue", 100)
    # App7 of member 100 reads App3's answer, so it is built after the memoized App3 row exists.
    _memoize(venue, "app7_customer", 100)
    _memoize(venue, "app3_clue", 101)
    put_call(venue, site=SITE, app="app7_customer", tokens_in=300, tokens_out=200)
    put_call(venue, site=OTHER_SITE, app="app7_customer", tokens_in=100, tokens_out=0)
    put_call(venue, site=SITE, app="app7_customer", status="failed", tokens_in=9000)
    second = client.post("/api/admin/ai/batch-run", json=body, headers=admin).json()
    assert (second["calls_by_app"], second["memoized_by_app"]) == (
        {"app3_clue": 0, "app7_customer": 1},
        {"app3_clue": 2, "app7_customer": 1},
    )
    # Recent successful calls of the app, any site: (500 + 100) / 2.
    assert second["tokens_per_call"] == {"app3_clue": 2000, "app7_customer": 300}
    assert (second["estimated_calls"], second["estimated_tokens"], second["runs_planned"]) == (1, 300, 1)
    assert second["batch_id"] != first["batch_id"]

    # An upstream app that needs a call makes its chain's later apps need one too.
    client.app.state.llm.settings.provider = "dashscope"  # every hash differs from the offline ones
    chain = client.post(
        "/api/admin/ai/batch-run",
        json={"site_id": SITE, "member_ids": [100], "app_types": ["app3_clue", "app6_note", "app8_consolidation"]},
        headers=admin,
    ).json()
    assert chain["calls_by_app"] == {"app3_clue": 1, "app6_note": 1, "app8_consolidation": 1}
    with db.connect(venue) as conn:
        plan = conn.execute("SELECT plan FROM biz.admin_batches WHERE batch_id = %s", (chain["batch_id"],)).fetchone()[
            "plan"
        ]
    assert [(r["assets"], r["partition"], r["run_config"], r["tags"].get("zqyy/force")) for r in plan] == [
        (["app3_clue", "app6_note", "app8_consolidation"], f"{SITE}-100", {}, "true")
    ]


def test_finance_apps_and_bad_requests(client: TestClient, venue: str, admin) -> None:
    client.app.state.llm.settings.provider = "offline"
    finance = client.post(
        "/api/admin/ai/batch-run", json={"site_id": SITE, "app_types": ["app2a_finance_area"]}, headers=admin
    ).json()
    assert finance["calls_by_app"] == {"app2a_finance_area": 64} and finance["runs_planned"] == 1
    inactive = client.post(
        "/api/admin/ai/batch-run",
        json={"site_id": 3, "app_types": ["app2_finance"]},
        headers=bearer_admin_of(client, 3),
    ).json()
    assert (inactive["estimated_calls"], inactive["skipped_by_app"]) == (0, {"app2_finance": 8})
    for bad, where in (
        ({"site_id": SITE, "app_types": ["app3_clue"]}, "member_ids"),
        ({"site_id": SITE, "app_types": []}, "app_types"),
        ({"site_id": SITE, "app_types": ["app9"], "member_ids": [1]}, "app_types"),
    ):
        response = client.post("/api/admin/ai/batch-run", json=bad, headers=admin)
        assert response.status_code == 422 and where in response.text, bad
    assert (
        client.post(
            "/api/admin/ai/batch-run", json={"site_id": OTHER_SITE, "app_types": ["app2_finance"]}, headers=admin
        ).status_code
        == 403
    )


def test_confirm_rejects_unknown_expired_and_repeated_batches(client: TestClient, venue: str, admin) -> None:
    client.app.state.llm.settings.provider = "offline"
    body = {"site_id": SITE, "app_types": ["app3_clue"], "member_ids": [999]}  # nothing to ask: no run to launch
    expired = client.post("/api/admin/ai/batch-run", json=body, headers=admin).json()["batch_id"]
    with db.transaction(venue) as conn:
        conn.execute(
            "UPDATE biz.admin_batches SET expires_at = now() - interval '1 second' WHERE batch_id = %s", (expired,)
        )
    response = client.post("/api/admin/ai/batch-run/confirm", json={"batch_id": expired}, headers=admin)
    assert response.status_code == 410 and "expired" in response.json()["detail"]

    unknown = client.post(
        "/api/admin/ai/batch-run/confirm", json={"batch_id": "5f0c6a52-8d7e-4e39-9d55-3c1b2a7e9f10"}, headers=admin
    )
    assert unknown.status_code == 404 and "no batch" in unknown.json()["detail"]
    malformed = client.post("/api/admin/ai/batch-run/confirm", json={"batch_id": "not-a-batch"}, headers=admin)
    assert malformed.status_code == 422
    assert (
        malformed.json()["detail"][0]["loc"] == ["body", "batch_id"] and "UUID" in malformed.json()["detail"][0]["msg"]
    )

    fresh = client.post("/api/admin/ai/batch-run", json=body, headers=admin).json()
    assert fresh["estimated_calls"] == 0
    other_admin = bearer_admin_of(client, OTHER_SITE)
    assert (
        client.post(
            "/api/admin/ai/batch-run/confirm", json={"batch_id": fresh["batch_id"]}, headers=other_admin
        ).status_code
        == 403
    )
    confirmed = client.post("/api/admin/ai/batch-run/confirm", json={"batch_id": fresh["batch_id"]}, headers=admin)
    assert confirmed.status_code == 200 and confirmed.json() == {
        "status": "launched",
        "batch_id": fresh["batch_id"],
        "runs": [],
    }
    again = client.post("/api/admin/ai/batch-run/confirm", json={"batch_id": fresh["batch_id"]}, headers=admin)
    assert again.status_code == 409 and "confirmed already" in again.json()["detail"]
