"""Back office: Dagster's sensors and schedules as the admin web's trigger list, started and stopped through Dagster."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status

from api.deps import AdminDep, ConnDep, SettingsDep
from api.schemas.admin import TriggerItem, TriggerUpdateRequest
from api.schemas.common import Id, Message
from api.services import triggers
from api.services.pipeline_runs import DagsterUnavailable

router = APIRouter(
    prefix="/api/admin/ai/triggers",
    tags=["admin: triggers"],
    responses={401: {"model": Message}, 403: {"model": Message}},
)

DAGSTER_ERROR_HEADER = "X-Dagster-Error"


@router.get("", response_model=list[TriggerItem])
async def list_triggers(
    request: Request, response: Response, principal: AdminDep, conn: ConnDep, settings: SettingsDep
):
    """Every sensor (`event`) and schedule (`cron`) of the Dagster code location, with its state,
    newest tick, next tick and last error, as Dagster reports them. Triggers belong to the
    deployment, not to a site.

    When Dagster cannot be asked, the triggers seen before are listed with status `unknown`, the
    reason in `last_error` and in the `X-Dagster-Error` header (the page stays usable)."""
    try:
        return await triggers.list_triggers(conn, request.app.state.dagster, settings.dagster_ui_base())
    except DagsterUnavailable as exc:
        reason = f"Dagster could not be asked: {exc}"
        response.headers[DAGSTER_ERROR_HEADER] = reason.encode("ascii", "replace").decode()[:500]
        return await triggers.known_triggers(conn, reason)


def _same_cron(a: str, b: str) -> bool:
    return a.split() == b.split()


@router.patch(
    "/{trigger_id}",
    response_model=TriggerItem,
    responses={
        404: {"model": Message},
        409: {"model": Message},
        422: {"model": Message},
        502: {"model": Message},
        503: {"model": Message},
    },
)
async def update_trigger(
    trigger_id: Annotated[Id, Path()],
    body: TriggerUpdateRequest,
    request: Request,
    principal: AdminDep,
    conn: ConnDep,
    settings: SettingsDep,
):
    """Start (`status: enabled`) or stop (`disabled`) a sensor or schedule, and set the admin's note.

    A schedule's cron is defined in code and Dagster's API offers no way to change it, so a
    different `cron_expression` is refused with 409 and nothing is changed (the daily App2
    prewarm reads `APP2_PREWARM_CRON` when the code location loads: set it and reload). The
    same cron as now is accepted. A sensor has no cron: 422."""
    row = await triggers.trigger_row(conn, trigger_id)
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no trigger {trigger_id}; GET /api/admin/ai/triggers lists them"
        )
    runs = request.app.state.dagster
    ui_base = settings.dagster_ui_base()
    try:
        item = await triggers.live_trigger(conn, runs, ui_base, row)
    except DagsterUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"Dagster could not be asked: {exc}") from exc
    if item is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"{row['kind']} {row['name']!r} (trigger {trigger_id}) is no longer defined in Dagster",
        )
    # Every check before any change, so a refused request changes nothing.
    if body.cron_expression is not None:
        if item["kind"] == "sensor":
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail=f"{item['job_name']} is a sensor (runs on events); it has no cron_expression",
            )
        current = item["trigger_config"]["cron_expression"]
        if not _same_cron(body.cron_expression, current):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                detail=f"the cron of Dagster schedule {item['job_name']} is defined in code ({current!r}) and "
                "Dagster's API cannot change it; nothing was changed. Change it where the schedule is defined "
                "(the App2 prewarm reads APP2_PREWARM_CRON) and reload the code location.",
            )
    if "description" in body.model_fields_set:
        await triggers.set_description(conn, trigger_id, body.description or None)
        row = {**row, "description": body.description or None}
    if body.status is not None and body.status != item["status"]:
        try:
            await triggers.set_running(runs, item, body.status == "enabled")
        except triggers.TriggerRefused as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=str(exc)) from exc
        except DagsterUnavailable as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"Dagster could not be asked: {exc}"
            ) from exc
    try:
        fresh = await triggers.live_trigger(conn, runs, ui_base, row)
    except DagsterUnavailable as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"the change was made but Dagster could not be asked again: {exc}",
        ) from exc
    return {k: v for k, v in (fresh or item).items() if not k.startswith("_")}
