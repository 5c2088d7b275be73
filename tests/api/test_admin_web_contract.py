"""The admin web's API module (seeds/000, ``adminAi.ts``) against our OpenAPI spec, and
against the served API with every status and filter value the admin web offers.

Every function of that module is listed below with what it sends and reads, as extracted from
the TypeScript: method, path (the client's base URL is ``/api``), query names, body fields and
the response fields its interfaces declare. The test fails when any of them is missing from the
spec, so a renamed path, parameter or field is caught before the admin web breaks.
"""

import re
from pathlib import Path

import pytest
import requests

from api.main import create_app
from api.settings import Settings
from tests.api.realtime_support import api_in_thread
from tests.api.services.conftest import api_settings_for, dagster_webserver, module_database, offline_location_env
from tests.defs.ai.venue import load_ai_venue
from zqyy_assets.core import db
from zqyy_assets.core import tokens as token_store
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


# --------------------------------------------------------------------------- the served API
#
# Every function of the module called over HTTP against the API served by uvicorn, with Dagster's
# webserver on the project's own code location (offline provider) behind it, and every status
# and filter value the admin web offers: each answers 2xx with the fields its interface reads.

TRIGGER_JOB_STATUSES = ("pending", "running", "completed", "failed", "skipped_duplicate")
RUN_LOG_STATUSES = ("success", "failed", "timeout", "circuit_open", "rate_limited", "budget_exceeded", "running")
ALERT_STATUSES = ("pending", "acknowledged", "ignored")
ALERT_TYPES = ("failed", "timeout", "circuit_open", "rate_limited", "budget_exceeded")


@pytest.fixture(scope="module")
def served(pg_server_url: str, template_db: str, tmp_path_factory: pytest.TempPathFactory):

    with module_database(pg_server_url, template_db, "contract") as url:
        with db.transaction(url) as conn:
            load_ai_venue(conn)
            admin = token_store.issue(conn, subject="店长", role="admin", site_ids=[1]).token
        env = offline_location_env(url)
        home = tmp_path_factory.mktemp("contract_dagster_home")
        with dagster_webserver(pg_server_url, home, ["-m", "zqyy_assets.definitions"], env) as graphql:
            settings = api_settings_for(url, graphql)
            with api_in_thread(settings) as (ws_base, _):
                yield url, ws_base.replace("ws://", "http://") + BASE_URL, {"Authorization": f"Bearer {admin}"}


def _seed_statuses(url: str) -> dict[str, dict[str, int]]:
    """A trigger job, a run log and an alert of every status (and alert type) on site 1."""

    ids: dict[str, dict[str, int]] = {"jobs": {}, "logs": {}, "alerts": {}}
    with db.transaction(url) as conn:
        for status in TRIGGER_JOB_STATUSES:
            ids["jobs"][status] = conn.execute(
                """INSERT INTO biz.ai_events (event_type, site_id, member_id, biz_date, status, payload)
                   VALUES ('consumption', 1, 100, '2026-03-02', %s, '{}') RETURNING id""",
                (status,),
            ).fetchone()["id"]
        for status in RUN_LOG_STATUSES:
            ids["logs"][status] = conn.execute(
                """INSERT INTO biz.ai_call_ledger (site_id, app_name, provider, status, target_id, request_prompt,
                                                   latency_ms, finished_at)
                   VALUES (1, 'app3_clue', 'dashscope', %s, '100', '{}', 5, now()) RETURNING id""",
                (status,),
            ).fetchone()["id"]
        for alert_type in ALERT_TYPES:
            ids["alerts"][alert_type] = conn.execute(
                """INSERT INTO biz.ai_alerts (site_id, app_type, alert_type, error_message)
                   VALUES (1, 'app3_clue', %s, 'boom') RETURNING id""",
                (alert_type,),
            ).fetchone()["id"]
    return ids


def _fields_present(body, fields: dict[str, list[str]], name: str) -> None:
    for where, names in fields.items():
        values = [body]
        for part in filter(None, re.split(r"(\[\])|\.", where)):
            values = [item for v in values for item in v] if part == "[]" else [v[part] for v in values]
        for value in values:
            missing = set(names) - set(value)
            assert not missing, f"{name}: {where or 'body'} lacks {sorted(missing)}"


def test_every_function_answers_on_the_served_api_with_every_status_and_filter(served) -> None:
    url, base, admin = served
    ids = _seed_statuses(url)
    specs = {f[0]: f for f in CLIENT_FUNCTIONS}
    called: set[str] = set()

    def call(name: str, path: str, *, params=None, body=None, expect=(200, 202)):
        method = specs[name][1]
        response = requests.request(method, base + path, params=params, json=body, headers=admin, timeout=120)
        assert response.status_code in expect, (
            f"{name} {method} {path} {params}: {response.status_code} {response.text}"
        )
        _fields_present(response.json(), specs[name][5], name)
        called.add(name)
        return response.json()

    call("getDashboard", "/admin/ai/dashboard", params={"site_id": 1, "range_days": 7})
    call(
        "getDashboard", "/admin/ai/dashboard", params={"site_id": 1, "date_from": "2026-03-01", "date_to": "2026-03-07"}
    )

    for status in TRIGGER_JOB_STATUSES:
        page = call("getTriggerJobs", "/admin/ai/trigger-jobs", params={"site_id": 1, "status": status, "page_size": 5})
        assert [(i["id"], i["status"]) for i in page["items"]] == [(ids["jobs"][status], status)], status
    call(
        "getTriggerJobs",
        "/admin/ai/trigger-jobs",
        params={"event_type": "consumption", "site_id": 1, "date_from": "2026-01-01", "date_to": "2030-01-01"},
    )
    job = call("getTriggerJobDetail", f"/admin/ai/trigger-jobs/{ids['jobs']['failed']}")
    assert job["status"] == "failed"
    retried = call("retryTriggerJob", f"/admin/ai/trigger-jobs/{ids['jobs']['failed']}/retry")
    assert retried["status"] in TRIGGER_JOB_STATUSES

    for status in RUN_LOG_STATUSES:
        page = call(
            "getRunLogs", "/admin/ai/run-logs", params={"site_id": 1, "status": status, "app_type": "app3_clue"}
        )
        assert [(i["id"], i["status"]) for i in page["items"]] == [(ids["logs"][status], status)], status
    call("getRunLogs", "/admin/ai/run-logs", params={"site_id": 1, "trigger_type": "event", "page": 1, "page_size": 5})
    log = call("getRunLogDetail", f"/admin/ai/run-logs/{ids['logs']['timeout']}")
    assert log["status"] == "timeout"

    alerts = ids["alerts"]
    assert {a["status"] for a in call("getAlerts", "/admin/ai/alerts", params={"site_id": 1})["items"]} == set(
        ALERT_TYPES
    )
    assert call("ackAlert", f"/admin/ai/alerts/{alerts['failed']}/ack")["alert_status"] == "acknowledged"
    assert call("ignoreAlert", f"/admin/ai/alerts/{alerts['timeout']}/ignore")["alert_status"] == "ignored"
    listed = {
        status: {a["id"] for a in call("getAlerts", "/admin/ai/alerts", params={"alert_status": status})["items"]}
        for status in ALERT_STATUSES
    }
    assert listed == {
        "pending": {alerts[t] for t in ("circuit_open", "rate_limited", "budget_exceeded")},
        "acknowledged": {alerts["failed"]},
        "ignored": {alerts["timeout"]},
    }

    call(
        "invalidateCache", "/admin/ai/cache/invalidate", body={"site_id": 1, "app_type": "app3_clue", "member_id": 100}
    )
    call("getBudget", "/admin/ai/budget")
    batch = call(
        "createBatchRun", "/admin/ai/batch-run", body={"app_types": ["app3_clue"], "member_ids": [100], "site_id": 1}
    )
    call("confirmBatchRun", "/admin/ai/batch-run/confirm", body={"batch_id": batch["batch_id"]})
    run = call("runApp", "/admin/ai/run/app3_clue", body={"site_id": 1, "member_id": 100})
    assert run["success"] is True, run
    triggers = call("listTriggers", "/admin/ai/triggers")
    call("updateTrigger", f"/admin/ai/triggers/{triggers[0]['id']}", body={"description": "contract test"})
    call("getPrewarmProgress", "/admin/ai/prewarm/progress", params={"site_id": 1})
    call("triggerEvent", "/admin/ai/trigger-event", body={"event_type": "consumption", "site_id": 1, "member_id": 100})

    assert called == set(specs), f"not called: {sorted(set(specs) - called)}"

    # A status outside the admin web's lists is a 422 naming the allowed ones.
    for path, field, allowed in (
        ("/admin/ai/trigger-jobs", "status", TRIGGER_JOB_STATUSES),
        ("/admin/ai/run-logs", "status", RUN_LOG_STATUSES),
        ("/admin/ai/alerts", "alert_status", ALERT_STATUSES),
    ):
        refused = requests.get(base + path, params={"site_id": 1, field: "launched"}, headers=admin, timeout=30)
        assert refused.status_code == 422 and all(word in refused.text for word in allowed), (path, refused.text)
