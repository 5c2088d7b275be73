"""Back office: the log of LLM calls (the LLM layer's ledger), as the admin web's run-log page reads it."""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

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
from api.schemas.admin import CallStatus, RunLogDetailResponse, RunLogListResponse
from api.schemas.common import AUTH_ERRORS, NOT_FOUND, Id
from api.services import admin

router = APIRouter(
    prefix="/api/admin/ai/run-logs",
    tags=["admin: run logs"],
    responses=AUTH_ERRORS,
)


@router.get("", response_model=RunLogListResponse)
async def list_run_logs(
    site_id: AdminSiteDep,
    conn: ConnDep,
    settings: SettingsDep,
    app_type: Annotated[str | None, Query(max_length=64, pattern=r"^[a-z0-9_]+$")] = None,
    status_: Annotated[CallStatus | None, Query(alias="status")] = None,
    trigger_type: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")] = None,
    date_from: date | None = None,
    date_to: date | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
):
    """A site's LLM calls, newest first (refusals by the guards included). Dates are calendar
    days in the venue's timezone, both inclusive."""
    check_date_range(date_from, date_to)
    start, end = admin.local_day_bounds(date_from or FIRST_DAY, date_to or LAST_DAY, settings.venue.venue_timezone)
    items, total = await admin.list_run_logs(
        conn,
        site_id,
        app_type=app_type,
        status=status_,
        trigger_type=trigger_type,
        called_from=start if date_from else None,
        called_before=end if date_to else None,
        page=page,
        page_size=page_size,
    )
    for item in items:
        item["dagster_run_url"] = settings.dagster_run_url(item["dagster_run_id"])
    return {"items": items, "total": total, "page": page, "page_size": page_size}


@router.get("/{log_id}", response_model=RunLogDetailResponse, responses=NOT_FOUND)
async def get_run_log(log_id: Annotated[Id, Path()], principal: AdminDep, conn: ConnDep, settings: SettingsDep):
    """One call in full: the prompt sent and the answer (or error) received."""
    row = await admin.get_run_log(conn, log_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no run log {log_id}")
    check_site(principal, row["site_id"])
    return row | {"dagster_run_url": settings.dagster_run_url(row["dagster_run_id"])}
