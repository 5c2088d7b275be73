"""Back office: business events as "trigger jobs" (their runs and statuses), manual triggers, retries."""

import asyncio
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request, status
from psycopg.rows import DictRow

from api.auth import Principal
from api.deps import (
    FIRST_DAY,
    LAST_DAY,
    AdminDep,
    AdminSiteDep,
    ConnDep,
    SettingsDep,
    check_date_range,
    check_site,
)
from api.schemas.admin import (
    EventStatusName,
    ManualTriggerRequest,
    ManualTriggerResponse,
    RetryResponse,
    TriggerJobDetailResponse,
    TriggerJobListResponse,
)
from api.schemas.common import AUTH_ERRORS, BAD_BODY, NOT_FOUND, EventType, Id
from api.services import AsyncConn, admin, events
from api.services.pipeline_runs import DagsterUnavailable
from zqyy_assets.core.business_date import business_date

router = APIRouter(prefix="/api/admin/ai", tags=["admin: events"], responses=AUTH_ERRORS)

RUN_STATUS_TIMEOUT_S = 3.0  # a listing must not hang on a slow Dagster; statuses are then left empty


async def _with_runs(request: Request, rows: list[dict]) -> tuple[list[dict], str | None]:
    """Attach each event's Dagster runs with their live status (one GraphQL call for the page)."""
    settings = request.app.state.settings
    run_ids = [run_id for row in rows for run_id in row["dagster_run_ids"]]
    statuses: dict[str, str] = {}
    error = None
    if run_ids:
        try:
            statuses = await asyncio.wait_for(request.app.state.dagster.statuses(run_ids), RUN_STATUS_TIMEOUT_S)
        except (DagsterUnavailable, TimeoutError) as exc:
            error = str(exc) or f"Dagster did not answer within {RUN_STATUS_TIMEOUT_S:g} s"
    for row in rows:
        row["runs"] = [
            {"run_id": run_id, "status": statuses.get(run_id), "url": settings.dagster_run_url(run_id)}
            for run_id in row["dagster_run_ids"]
        ]
    return rows, error


@router.get("/trigger-jobs", response_model=TriggerJobListResponse)
async def list_trigger_jobs(
    request: Request,
    site_id: AdminSiteDep,
    conn: ConnDep,
    settings: SettingsDep,
    event_type: EventType | None = None,
    status_: Annotated[EventStatusName | None, Query(alias="status")] = None,
    date_from: date | None = None,
    date_to: date | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
):
    """A site's events, newest first, with their runs' status and today's skipped duplicates.

    `date_from` / `date_to` are calendar days in the venue's timezone, both inclusive."""
    check_date_range(date_from, date_to)
    start, end = admin.local_day_bounds(date_from or FIRST_DAY, date_to or LAST_DAY, settings.venue.venue_timezone)
    rows, total = await admin.list_jobs(
        conn,
        site_id,
        event_type=event_type,
        status=status_,
        created_from=start if date_from else None,
        created_before=end if date_to else None,
        page=page,
        page_size=page_size,
    )
    rows, runs_error = await _with_runs(request, rows)
    today = business_date(datetime.now(UTC), settings.venue.venue_timezone, settings.venue.business_day_cutoff_hours)
    return {
        "items": rows,
        "total": total,
        "page": page,
        "page_size": page_size,
        "today_skipped_duplicates": await admin.skipped_duplicates(conn, site_id, today),
        "runs_error": runs_error,
    }


async def _event_in_scope(conn: AsyncConn, principal: Principal, event_id: int) -> DictRow:
    """The event with its detail columns; 404 when there is none, 403 when its site is not the token's."""
    exists, site_id = await admin.event_site(conn, event_id)
    if exists:
        row = await events.get_event(conn, check_site(principal, site_id), event_id, detail=True)
        if row is not None:
            return row
    raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no trigger job {event_id}")


@router.get("/trigger-jobs/{job_id}", response_model=TriggerJobDetailResponse, responses=NOT_FOUND)
async def get_trigger_job(request: Request, job_id: Annotated[Id, Path()], principal: AdminDep, conn: ConnDep):
    row = await _event_in_scope(conn, principal, job_id)
    (row,), _ = await _with_runs(request, [row])
    return row


@router.post(
    "/trigger-jobs/{job_id}/retry",
    response_model=RetryResponse,
    status_code=status.HTTP_202_ACCEPTED,
    responses=NOT_FOUND,
)
async def retry_trigger_job(job_id: Annotated[Id, Path()], principal: AdminDep, conn: ConnDep, settings: SettingsDep):
    """Queue the event again as a new, forced event pointing back at the original."""
    original = await _event_in_scope(conn, principal, job_id)
    row = await events.insert_event(
        conn,
        settings,
        event_type=original["event_type"],
        site_id=original["site_id"],
        member_id=original["member_id"],
        assistant_id=original["assistant_id"],
        payload=original["payload"] or {},
        is_forced=True,
        source="retry",
        retry_of=job_id,
        connector_type=original["connector_type"],
        biz_date=original["biz_date"],
    )
    return {"trigger_job_id": row["id"], "status": row["status"]}


@router.post(
    "/trigger-event", response_model=ManualTriggerResponse, status_code=status.HTTP_202_ACCEPTED, responses=BAD_BODY
)
async def trigger_event(body: ManualTriggerRequest, principal: AdminDep, conn: ConnDep, settings: SettingsDep):
    """Queue an event by hand; forced by default, so the same-day de-duplication is bypassed."""
    site_id = check_site(principal, body.site_id, "body")
    events.require_event_fields(body.event_type, body.model_dump())
    row = await events.insert_event(
        conn,
        settings,
        event_type=body.event_type,
        site_id=site_id,
        member_id=body.member_id,
        assistant_id=body.assistant_id,
        payload=body.payload,
        is_forced=body.is_forced,
        source="admin",
    )
    return {"trigger_job_id": row["id"], "status": row["status"]}
