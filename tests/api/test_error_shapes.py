"""Every 422 is the validation-error list the OpenAPI document declares, naming the field, also
for the rules a schema cannot state; the other error statuses are declared where they occur."""

import asyncio
import json

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.main import _data_error
from tests.api.conftest import SITE, bearer

RULES = [
    ("GET", "/api/admin/ai/dashboard?date_from=2026-03-01", None, ["query", "date_to"], "go together"),
    ("GET", "/api/admin/ai/dashboard?date_from=2026-03-02&date_to=2026-03-01", None, ["query", "date_from"], "after"),
    ("GET", "/api/admin/ai/trigger-jobs?date_to=1999-12-31", None, ["query", "date_to"], "between"),
    ("GET", "/api/ai/cache/app3_clue/3_4", None, ["path", "target_id"], "member id"),
    ("GET", "/api/ai/cache/app4_analysis/4/history", None, ["path", "target_id"], "{assistant_id}_{member_id}"),
    (
        "POST",
        "/api/admin/ai/batch-run",
        {"app_types": ["app3_clue"], "site_id": SITE},
        ["body", "member_ids"],
        "required",
    ),
    ("POST", "/api/admin/ai/batch-run/confirm", {"batch_id": "x"}, ["body", "batch_id"], "UUID"),
    ("PATCH", "/api/admin/ai/triggers/1", {"cron_expression": "0 10 * *"}, ["body", "cron_expression"], "five fields"),
    ("POST", "/api/admin/ai/run/app6_note", {"site_id": SITE, "member_id": 1}, ["body", "note_content"], "note"),
]


@pytest.mark.parametrize(("method", "path", "body", "loc", "words"), RULES)
def test_a_rule_beyond_the_schema_answers_a_validation_error_naming_the_field(
    client: TestClient, admin, method: str, path: str, body, loc: list[str], words: str
) -> None:
    response = client.request(method, path, json=body, headers=admin)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert isinstance(errors, list) and errors[0]["loc"] == loc and words in errors[0]["msg"], errors


def test_site_id_with_a_token_of_several_sites(client: TestClient, make_token) -> None:
    headers = bearer(make_token("admin", sites=(SITE, SITE + 1)))
    for path in ("/api/admin/ai/prewarm/progress", "/api/ai/cache/app3_clue/7", "/api/admin/ai/trigger-jobs"):
        response = client.get(path, headers=headers)
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == ["query", "site_id"], error
        assert error["msg"] == f"site_id is required: this token covers sites [{SITE}, {SITE + 1}]"


def test_a_value_postgres_refuses_is_a_validation_error() -> None:
    response = asyncio.run(_data_error(None, psycopg.DataError("invalid byte sequence for encoding\nmore")))  # type: ignore[arg-type]
    assert response.status_code == 422
    assert json.loads(response.body) == {
        "detail": [{"type": "value_error", "loc": [], "msg": "invalid value: invalid byte sequence for encoding"}]
    }


def test_the_document_declares_each_error_where_it_occurs(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    validation = {"$ref": "#/components/schemas/HTTPValidationError"}
    for path, operations in paths.items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if path != "/api/health":
                assert {"401", "403"} <= set(responses), (method, path)
            if "requestBody" in operation:
                assert "400" in responses, (method, path)
            if "422" in responses:
                assert responses["422"]["content"]["application/json"]["schema"] == validation, (method, path)
    patch = paths["/api/admin/ai/triggers/{trigger_id}"]["patch"]["responses"]
    assert {"400", "404", "409", "422", "502", "503"} <= set(patch)
    site = next(p for p in paths["/api/admin/ai/prewarm/progress"]["get"]["parameters"] if p["name"] == "site_id")
    assert site["required"] is False and "Required when the token covers several sites" in site["description"]


def test_a_method_the_path_does_not_serve_is_a_405_naming_all_it_does(client: TestClient, admin) -> None:
    for method, path, allowed in [
        ("TRACE", "/api/health", "GET"),
        ("DELETE", "/api/xcx/chat/1/messages", "GET, POST"),  # one path, two routes
        ("PUT", "/api/admin/ai/triggers/1", "PATCH"),
    ]:
        response = client.request(method, path, headers=admin)
        assert (response.status_code, response.headers.get("allow")) == (405, allowed), (method, path)
