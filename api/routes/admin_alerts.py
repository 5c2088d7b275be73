"""Back office: alerts raised by refused, failed or timed-out LLM calls and by failed runs, with
acknowledge / ignore (types, flood control and pushes: ``zqyy_assets/core/alerts.py``)."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from api.deps import AdminDep, AdminSiteDep, ConnDep
from api.schemas.admin import AlertActionResponse, AlertListResponse, AlertStatus
from api.schemas.common import AUTH_ERRORS, NOT_FOUND, Id
from api.services import admin

router = APIRouter(
    prefix="/api/admin/ai/alerts",
    tags=["admin: alerts"],
    responses=AUTH_ERRORS,
)


@router.get("", response_model=AlertListResponse)
async def list_alerts(
    site_id: AdminSiteDep,
    conn: ConnDep,
    alert_status: AlertStatus | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=100)] = 20,
):
    """A site's alerts (and run-wide ones that belong to no site), latest occurrence first. One
    open (`pending`) alert per site, app and type counts its `occurrences`; acknowledged or
    ignored ones are closed."""
    items, total = await admin.list_alerts(conn, site_id, alert_status, page=page, page_size=page_size)
    return {"items": items, "total": total, "page": page, "page_size": page_size}


async def _handle(alert_id: int, new_status: str, principal, conn) -> dict:
    exists, site_id = await admin.alert_site(conn, alert_id)
    if not exists:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no alert {alert_id}")
    if site_id is not None and site_id not in principal.site_ids:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"alert {alert_id} belongs to a site outside this token")
    return await admin.set_alert_status(conn, alert_id, new_status, principal.subject)


@router.post("/{alert_id}/ack", response_model=AlertActionResponse, responses=NOT_FOUND)
async def ack_alert(alert_id: Annotated[Id, Path()], principal: AdminDep, conn: ConnDep):
    return await _handle(alert_id, "acknowledged", principal, conn)


@router.post("/{alert_id}/ignore", response_model=AlertActionResponse, responses=NOT_FOUND)
async def ignore_alert(alert_id: Annotated[Id, Path()], principal: AdminDep, conn: ConnDep):
    return await _handle(alert_id, "ignored", principal, conn)
