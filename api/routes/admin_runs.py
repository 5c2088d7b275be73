"""Back office: run one AI app for one target now, through Dagster, and answer with the result."""

from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError

from api.deps import AdminDep, PoolDep, SettingsDep, check_site
from api.schemas.admin import RunAppRequest, RunAppResponse
from api.schemas.common import AUTH_ERRORS, BAD_BODY, AppType
from api.services import cache_reads
from api.services.pipeline_runs import DagsterUnavailable, app_target
from zqyy_assets.core.apps import APP2_AREA_APP, APP2_SITE_APP, NOTE_APP
from zqyy_assets.core.chains import ASSISTANT_MEMBER_APPS
from zqyy_assets.core.prompts import GivenNote

router = APIRouter(prefix="/api/admin/ai", tags=["admin: runs"], responses=AUTH_ERRORS)


def _check_fields(app_type: str, body: RunAppRequest) -> None:
    """422 naming each field this app needs but the body left out (or got wrong), as the old
    backend's run-one-app listed them: app2_finance time_dimension (area `all`), app2a_finance_area
    time_dimension and another area, app3/7/8 member_id, app4/5 member_id and assistant_id,
    app6_note member_id, note_content and noted_by_name (noted_by_created_at optional)."""
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
        if app_type == NOTE_APP:
            if not (body.note_content or "").strip():
                missing("note_content", "app6_note analyses the note given in note_content")
            if not (body.noted_by_name or "").strip():
                missing("noted_by_name", "app6_note needs who wrote the note")
    if errors:
        raise RequestValidationError(errors)


def _given_note(app_type: str, body: RunAppRequest, venue_timezone: str) -> GivenNote | None:
    if app_type != NOTE_APP:
        return None
    assert body.note_content is not None and body.noted_by_name is not None  # _check_fields
    at = body.noted_by_created_at
    if at is not None and at.tzinfo is None:
        at = at.replace(tzinfo=ZoneInfo(venue_timezone))
    return GivenNote(body.note_content.strip(), body.noted_by_name.strip(), at)


@router.post("/run/{app_type}", response_model=RunAppResponse, responses=BAD_BODY)
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
        note=_given_note(app_type, body, settings.venue.venue_timezone),
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
