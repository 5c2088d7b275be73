"""run/{app_type}: each app's required fields (the old backend's list), a 422 naming each one
missing with why; a complete body passes to the launch (Dagster is a closed port here: the
answer is success=false naming it). Runs through Dagster: tests/api/services/test_dagster_runs*.py."""

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import SITE

NOTE = {"note_content": "喜欢周末晚上打斯诺克", "noted_by_name": "王教练", "noted_by_created_at": "2026-03-04 10:15"}
# app: (a complete body past site_id, {field left out: a word of its message})
REQUIRED = {
    "app2_finance": ({"time_dimension": "this_month"}, {"time_dimension": "one time_dimension"}),
    "app2a_finance_area": (
        {"time_dimension": "this_month", "area": "vip"},
        {"time_dimension": "one time_dimension", "area": "an area other than 'all'"},
    ),
    "app3_clue": ({"member_id": 7}, {"member_id": "one member"}),
    "app4_analysis": ({"member_id": 7, "assistant_id": 3}, {"member_id": "one member", "assistant_id": "pair"}),
    "app5_tactics": ({"member_id": 7, "assistant_id": 3}, {"member_id": "one member", "assistant_id": "pair"}),
    "app6_note": (
        {"member_id": 7, **NOTE},
        {"member_id": "one member", "note_content": "the note given", "noted_by_name": "who wrote the note"},
    ),
    "app7_customer": ({"member_id": 7}, {"member_id": "one member"}),
    "app8_consolidation": ({"member_id": 7}, {"member_id": "one member"}),
}


@pytest.mark.parametrize("app", sorted(REQUIRED))
def test_each_required_field_left_out_is_a_422_naming_it(client: TestClient, admin, app: str) -> None:
    complete, required = REQUIRED[app]
    for field, why in required.items():
        body = {"site_id": SITE, **{k: v for k, v in complete.items() if k != field}}
        response = client.post(f"/api/admin/ai/run/{app}", json=body, headers=admin)
        assert response.status_code == 422, (app, field, response.text)
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", field] and error["msg"].startswith("Field required: ") and why in error["msg"]
    # Nothing left out: all of them named at once.
    empty = client.post(f"/api/admin/ai/run/{app}", json={"site_id": SITE}, headers=admin)
    assert empty.status_code == 422
    assert [e["loc"][1] for e in empty.json()["detail"]] == list(required)
    # site_id is required by every app.
    no_site = client.post(f"/api/admin/ai/run/{app}", json=complete, headers=admin)
    assert no_site.status_code == 422 and no_site.json()["detail"][0]["loc"] == ["body", "site_id"]
    # The complete body gets as far as launching the run.
    launched = client.post(f"/api/admin/ai/run/{app}", json={"site_id": SITE, **complete}, headers=admin)
    assert launched.status_code == 200, launched.text
    assert launched.json()["success"] is False and launched.json()["error"].startswith("could not launch the run")


def test_app6_needs_words_in_its_note_and_a_readable_time(client: TestClient, admin) -> None:
    blank = client.post(
        "/api/admin/ai/run/app6_note",
        json={"site_id": SITE, "member_id": 7, **NOTE, "note_content": "  ", "noted_by_name": ""},
        headers=admin,
    )
    assert blank.status_code == 422 and [e["loc"][1] for e in blank.json()["detail"]] == [
        "note_content",
        "noted_by_name",
    ]
    when = client.post(
        "/api/admin/ai/run/app6_note",
        json={"site_id": SITE, "member_id": 7, **NOTE, "noted_by_created_at": "yesterday"},
        headers=admin,
    )
    assert when.status_code == 422 and when.json()["detail"][0]["loc"] == ["body", "noted_by_created_at"]
    # The time is optional.
    fine = {k: v for k, v in NOTE.items() if k != "noted_by_created_at"}
    response = client.post("/api/admin/ai/run/app6_note", json={"site_id": SITE, "member_id": 7, **fine}, headers=admin)
    assert response.status_code == 200


def test_app2_finance_answers_area_all_only(client: TestClient, admin) -> None:
    response = client.post(
        "/api/admin/ai/run/app2_finance",
        json={"site_id": SITE, "time_dimension": "this_month", "area": "vip"},
        headers=admin,
    )
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "area"] and "use app2a_finance_area" in error["msg"]
