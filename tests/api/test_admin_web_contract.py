"""The admin web's API module (seeds/000, ``adminAi.ts``) against our OpenAPI spec.

Every function of that module is listed below with what it sends and reads, as extracted from
the TypeScript: method, path (the client's base URL is ``/api``), query names, body fields and
the response fields its interfaces declare. The test fails when any of them is missing from the
spec, so a renamed path, parameter or field is caught before the admin web breaks.
"""

import re
from pathlib import Path

import pytest

from api.main import create_app
from api.settings import Settings
from zqyy_assets.core.settings import DatabaseSettings

TRIGGER_JOB_ITEM = [
    "id",
    "event_type",
    "member_id",
    "status",
    "app_chain",
    "is_forced",
    "site_id",
    "started_at",
    "finished_at",
    "created_at",
]
RUN_LOG_ITEM = [
    "id",
    "app_type",
    "trigger_type",
    "member_id",
    "tokens_used",
    "latency_ms",
    "status",
    "site_id",
    "created_at",
]
ALERT_ITEM = ["id", "app_type", "status", "alert_status", "error_message", "created_at"]
BUDGET = ["daily_used", "daily_limit", "daily_pct", "monthly_used", "monthly_limit", "monthly_pct"]
TRIGGER_ITEM = [
    "id",
    "job_name",
    "job_type",
    "trigger_condition",
    "trigger_config",
    "status",
    "description",
    "last_run_at",
    "next_run_at",
    "last_error",
]
PAGED = ["items", "total", "page", "page_size"]

# (function, method, path, query names, body fields, response fields; "items[]" = fields of each item)
CLIENT_FUNCTIONS = [
    (
        "getDashboard",
        "GET",
        "/admin/ai/dashboard",
        ["site_id", "range_days", "date_from", "date_to"],
        [],
        {
            "": [
                "today_calls",
                "today_success_rate",
                "today_tokens",
                "today_avg_latency_ms",
                "trend_7d",
                "app_distribution",
                "budget",
                "recent_alerts",
                "app_health",
            ],
            "trend_7d[]": ["date", "calls", "success_rate"],
            "app_distribution[]": ["app_type", "count", "percentage"],
            "budget": BUDGET,
            "recent_alerts[]": ALERT_ITEM,
            "app_health[]": ["app_type", "last_status", "last_call_at"],
        },
    ),
    (
        "getTriggerJobs",
        "GET",
        "/admin/ai/trigger-jobs",
        ["event_type", "status", "site_id", "date_from", "date_to", "page", "page_size"],
        [],
        {"": [*PAGED, "today_skipped_duplicates"], "items[]": TRIGGER_JOB_ITEM},
    ),
    (
        "getTriggerJobDetail",
        "GET",
        "/admin/ai/trigger-jobs/{id}",
        [],
        [],
        {"": [*TRIGGER_JOB_ITEM, "payload", "error_message", "connector_type"]},
    ),
    ("retryTriggerJob", "POST", "/admin/ai/trigger-jobs/{id}/retry", [], [], {"": ["trigger_job_id", "status"]}),
    (
        "getRunLogs",
        "GET",
        "/admin/ai/run-logs",
        ["app_type", "status", "trigger_type", "site_id", "date_from", "date_to", "page", "page_size"],
        [],
        {"": PAGED, "items[]": RUN_LOG_ITEM},
    ),
    (
        "getRunLogDetail",
        "GET",
        "/admin/ai/run-logs/{id}",
        [],
        [],
        {"": [*RUN_LOG_ITEM, "request_prompt", "response_text", "error_message", "session_id", "finished_at"]},
    ),
    (
        "invalidateCache",
        "POST",
        "/admin/ai/cache/invalidate",
        [],
        ["site_id", "app_type", "member_id"],
        {"": ["affected_count"]},
    ),
    ("getBudget", "GET", "/admin/ai/budget", [], [], {"": BUDGET}),
    (
        "createBatchRun",
        "POST",
        "/admin/ai/batch-run",
        [],
        ["app_types", "member_ids", "site_id"],
        {"": ["batch_id", "estimated_calls", "estimated_tokens"]},
    ),
    ("confirmBatchRun", "POST", "/admin/ai/batch-run/confirm", [], ["batch_id"], {"": ["status"]}),
    (
        "getAlerts",
        "GET",
        "/admin/ai/alerts",
        ["alert_status", "site_id", "page", "page_size"],
        [],
        {"": PAGED, "items[]": ALERT_ITEM},
    ),
    ("ackAlert", "POST", "/admin/ai/alerts/{id}/ack", [], [], {"": ["id", "alert_status"]}),
    ("ignoreAlert", "POST", "/admin/ai/alerts/{id}/ignore", [], [], {"": ["id", "alert_status"]}),
    (
        "runApp",
        "POST",
        "/admin/ai/run/{appType}",
        [],
        [
            "site_id",
            "member_id",
            "assistant_id",
            "time_dimension",
            "area",
            "note_content",
            "noted_by_name",
            "noted_by_created_at",
        ],
        {"": ["app_type", "success", "result", "error"]},
    ),
    ("listTriggers", "GET", "/admin/ai/triggers", [], [], {"[]": TRIGGER_ITEM}),
    (
        "updateTrigger",
        "PATCH",
        "/admin/ai/triggers/{id}",
        [],
        ["status", "cron_expression", "description"],
        {"": TRIGGER_ITEM},
    ),
    (
        "getPrewarmProgress",
        "GET",
        "/admin/ai/prewarm/progress",
        ["site_id"],
        [],
        {"": ["total", "done", "missing", "last_updated"], "missing[]": ["target_id", "time_dimension", "area"]},
    ),
    (
        "triggerEvent",
        "POST",
        "/admin/ai/trigger-event",
        [],
        ["event_type", "site_id", "member_id", "assistant_id", "payload", "is_forced"],
        {"": ["trigger_job_id", "status"]},
    ),
]
BASE_URL = "/api"  # the admin web's apiClient base
CLIENT_MODULE = Path(__file__).with_name("contracts") / "adminAi.ts"


@pytest.fixture(scope="module")
def spec() -> dict:
    return create_app(Settings(database=DatabaseSettings(database_url="postgresql://unused/unused"))).openapi()


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    for variant in schema.get("anyOf", ()):  # Optional[X]: the non-null branch
        if variant.get("type") != "null":
            return _resolve(spec, variant)
    return schema


def _at(spec: dict, schema: dict, where: str) -> dict:
    """The schema at a dotted location: 'budget', 'items[]', '[]' (the array's items), '' (itself)."""
    schema = _resolve(spec, schema)
    for part in filter(None, re.split(r"(\[\])|\.", where)):
        schema = _resolve(spec, schema["items"] if part == "[]" else schema["properties"][part])
    return schema


def _operation(spec: dict, method: str, path: str) -> dict | None:
    for our_path, operations in spec["paths"].items():
        if _shape(our_path) == _shape(BASE_URL + path) and method.lower() in operations:
            return operations[method.lower()]
    return None


@pytest.mark.parametrize(
    ("name", "method", "path", "query", "body", "fields"), CLIENT_FUNCTIONS, ids=[f[0] for f in CLIENT_FUNCTIONS]
)
def test_every_admin_web_function_has_its_path_parameters_and_fields(
    spec, name, method, path, query, body, fields
) -> None:
    operation = _operation(spec, method, path)
    assert operation is not None, f"{name}: {method} {BASE_URL}{path} is not in our OpenAPI spec"
    ours = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    assert not set(query) - ours, f"{name}: query parameters missing: {sorted(set(query) - ours)}"
    if body:
        request = _resolve(spec, operation["requestBody"]["content"]["application/json"]["schema"])
        assert not set(body) - set(request["properties"]), f"{name}: body fields missing"
    response = operation["responses"].get("200") or operation["responses"].get("202")
    schema = response["content"]["application/json"]["schema"]
    for where, names in fields.items():
        properties = set(_at(spec, schema, where).get("properties", {}))
        assert not set(names) - properties, (
            f"{name}: response {where or 'body'} lacks {sorted(set(names) - properties)}"
        )


def test_the_list_is_every_function_of_the_client_module() -> None:
    """The list above against the module itself (tests/api/contracts/adminAi.ts, copied from the
    seed): a function added, removed or re-pointed there fails here until the list follows."""
    source = CLIENT_MODULE.read_text(encoding="utf-8")
    calls = re.findall(
        r"export async function (\w+)\([^)]*\)[^{]*\{\s*const \{ data \} = await "
        r"apiClient\.(\w+)<[^>]*>\(\s*[\"`]([^\"`]+)[\"`]",
        source,
    )
    assert len(calls) == source.count("export async function ") == 18
    extracted = [(name, method.upper(), _shape(path.replace("$", ""))) for name, method, path in calls]
    assert extracted == [(name, method, _shape(path)) for name, method, path, *_ in CLIENT_FUNCTIONS]
