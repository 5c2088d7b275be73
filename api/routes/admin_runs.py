"""Back office: run one AI app for one target now, through Dagster, and answer with the result."""

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError

from api.deps import AdminDep, PoolDep, SettingsDep, check_site
from api.schemas.admin import RunAppRequest, RunAppResponse
from api.schemas.common import AppType, Message
from api.services import cache_reads
from api.services.pipeline_runs import DagsterUnavailable, app_target
from zqyy_assets.core.apps import APP2_AREA_APP, APP2_SITE_APP
from zqyy_assets.core.chains import ASSISTANT_MEMBER_APPS

router = APIRouter(
    prefix="/api/admin/ai", tags=["admin: runs"], responses={401: {"model": Message}, 403: {"model": Message}}
)


def _check_fields(app_type: str, body: RunAppRequest) -> None:
    """422 naming each field this app needs but the body left out (or got wrong)."""
    errors = []

    def missing(name: str, why: str) -> None:
        errors.append({"type": "missing", "loc": ("body", name), "msg": f"Field required: {why}", "input": None})

    if app_type in (APP2_SITE_APP, APP2_AREA_APP):
        if body.time_dimension is None:
            missing("time_dimension", f"{app_type} runs for one time_dimension")
        if app_type == "app2_finance" and body.area not in (None, "all"):
            errors.append(
                {
                    "type": "value_error",
                    "loc": ("body", "area"),
                    "input": body.area,
                    "msg": "app2_finance answers area 'all'; use app2a_finance_area for other areas",
                }
            )
        if app_type == "app2a_finance_area" and body.area in (None, "all"):
            missing("area", "app2a_finance_area needs an area other than 'all'")
    else:
        if body.member_id is None:
            missing("member_id", f"{app_type} runs for one member")
        if app_type in ASSISTANT_MEMBER_APPS and body.assistant_id is None:
            missing("assistant_id", f"{app_type} runs for one assistant-member pair")
    if errors:
        raise RequestValidationError(errors)


@router.post("/run/{app_type}", response_model=RunAppResponse)
async def run_app(
    app_type: AppType, body: RunAppRequest, request: Request, principal: AdminDep, pool: PoolDep, settings: SettingsDep
):
    """Launch a Dagster run of this app for this target, wait for it (up to RUN_APP_TIMEOUT_S,
    default 120 s) and answer with the cached result. Past the wait, `success` is false and
    `error` names the run, which goes on and caches its answer when it ends."""
    site_id = check_site(principal, body.site_id)
    _check_fields(app_type, body)
    target = app_target(
        app_type,
        site_id,
        member_id=body.member_id,
        assistant_id=body.assistant_id,
        time_dimension=body.time_dimension,
        area=body.area or "all",
    )
    answer = {"app_type": app_type, "success": False, "result": None, "error": None, "target_id": target.target_id}
    runs = request.app.state.dagster
    try:
        run_id = await runs.launch(target)
    except DagsterUnavailable as exc:
        return answer | {"error": f"could not launch the run: {exc}"}
    answer["run_id"] = run_id
    try:
        run_status, finished = await runs.wait(
            run_id, timeout_s=settings.run_app_timeout_s, poll_s=settings.run_app_poll_interval_s
        )
    except DagsterUnavailable as exc:
        return answer | {"error": f"run {run_id} was launched but its status could not be read: {exc}"}
    answer["run_status"] = run_status
    if not finished:
        return answer | {
            "error": f"run {run_id} is still {run_status} after {settings.run_app_timeout_s:g} s; "
            "it goes on and caches its answer when it ends"
        }
    if run_status != "SUCCESS":
        return answer | {"error": f"run {run_id} ended {run_status}; see the run's logs in Dagster"}
    # The connection is taken only now: the wait above must not pin one for minutes.
    async with pool.connection() as conn:
        row = await cache_reads.latest_valid(conn, site_id, app_type, target.target_id)
    if row is None:
        return answer | {
            "error": f"run {run_id} succeeded but cached no answer for {target.target_id} at site {site_id}"
        }
    return answer | {"success": True, "result": row["result"]}
