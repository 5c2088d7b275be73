"""Back office: Dagster's sensors and schedules as the admin web's trigger list, started and stopped through
Dagster; the daily prewarm's cron changed through Postgres and a reload of the code location."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError

from api.deps import AdminDep, ConnDep, SettingsDep
from api.schemas.admin import TriggerItem, TriggerUpdateRequest
from api.schemas.common import AUTH_ERRORS, BAD_BODY, CONFLICT, DAGSTER_AWAY, NOT_FOUND, Id, Message
from api.services import triggers
from api.services.pipeline_runs import DagsterUnavailable
from zqyy_assets.core.schedules import EDITABLE_SCHEDULES

router = APIRouter(
    prefix="/api/admin/ai/triggers",
    tags=["admin: triggers"],
    responses=AUTH_ERRORS,
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
        _dagster_error(response, reason)
        return await triggers.known_triggers(conn, reason)


def _cron_refused(message: str, cron: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": ("body", "cron_expression"), "msg": message, "input": cron}]
    )


@router.patch(
    "/{trigger_id}",
    response_model=TriggerItem,
    responses={
        **BAD_BODY,
        **NOT_FOUND,
        **CONFLICT,
        502: {"model": Message, "description": "Dagster refused to start or stop the trigger."},
        **DAGSTER_AWAY,
    },
)
async def update_trigger(
    trigger_id: Annotated[Id, Path()],
    body: TriggerUpdateRequest,
    request: Request,
    response: Response,
    principal: AdminDep,
    conn: ConnDep,
    settings: SettingsDep,
):
    """Start (`status: enabled`) or stop (`disabled`) a sensor or schedule, set the admin's note,
    and change when the daily App2 prewarm runs (`cron_expression`).

    The cron (five fields, read in the schedule's `execution_timezone`) is saved in Postgres and
    Dagster is asked to reload the code location, which reads it when it loads: the schedule,
    its `next_run_at`, Dagster's UI and the daemon then follow it, also after any restart. When
    Dagster cannot be asked or reloaded, the cron is saved all the same and applies when the
    code location next loads: the answer says so in `last_error` and the `X-Dagster-Error`
    header (then `trigger_config.saved_cron_expression` shows it until Dagster has it). A bad cron,
    or a cron for a sensor: 422 naming `cron_expression`. Another schedule's cron is fixed in
    code: 409. Starting or stopping needs Dagster: 503 when it cannot be asked, and nothing is
    changed."""
    row = await triggers.trigger_row(conn, trigger_id)
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no trigger {trigger_id}; GET /api/admin/ai/triggers lists them"
        )
    cron = body.cron_expression
    # Every check before any change, so a refused request changes nothing.
    if cron is not None:
        if row["kind"] == "sensor":
            raise _cron_refused(f"{row['name']} is a sensor (runs on events); it has no cron_expression", cron)
        if row["name"] not in EDITABLE_SCHEDULES:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                detail=f"the cron of schedule {row['name']} is fixed in code; only "
                f"{', '.join(sorted(EDITABLE_SCHEDULES))} can be changed here. Nothing was changed.",
            )
    runs = request.app.state.dagster
    ui_base = settings.dagster_ui_base()
    try:
        item = await triggers.live_trigger(conn, runs, ui_base, row)
    except DagsterUnavailable as exc:
        if body.status is not None:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"Dagster could not be asked: {exc}"
            ) from exc
        # The note and the cron live in Postgres: saved now; the cron applies at the next load.
        await _save(conn, row, body, principal.subject)
        _dagster_error(response, f"Dagster could not be asked: {exc}")
        (known,) = await triggers.known_triggers(conn, f"Dagster could not be asked: {exc}", trigger_id)
        return known
    if item is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"{row['kind']} {row['name']!r} (trigger {trigger_id}) is no longer defined in Dagster",
        )
    row = await _save(conn, row, body, principal.subject)
    if cron is not None and cron != item["trigger_config"]["cron_expression"]:
        try:
            await runs.reload_location()
        except DagsterUnavailable as exc:
            _dagster_error(response, f"the cron is saved, but {exc}; it applies when the code location next loads")
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


async def _save(conn: ConnDep, row: dict, body: TriggerUpdateRequest, subject: str) -> dict:
    """The admin's note and cron, saved (one transaction); the row with the new note."""
    async with conn.transaction():
        if "description" in body.model_fields_set:
            await triggers.set_description(conn, row["id"], body.description or None)
            row = {**row, "description": body.description or None}
        if body.cron_expression is not None:
            await triggers.save_cron(conn, row["name"], body.cron_expression, subject)
    return row


def _dagster_error(response: Response, reason: str) -> None:
    response.headers[DAGSTER_ERROR_HEADER] = reason.encode("ascii", "replace").decode()[:500]
