"""Back office: the AI dashboard and the token budget."""

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request

from api.deps import AdminDep, AdminSiteDep, ConnDep, SettingsDep, check_date_range
from api.schemas.admin import BudgetInfo, DashboardResponse
from api.schemas.common import AUTH_ERRORS, invalid
from api.services import dashboard as dashboard_service

router = APIRouter(prefix="/api/admin/ai", tags=["admin: dashboard"], responses=AUTH_ERRORS)

MAX_RANGE_DAYS = 366


async def _budget(request: Request) -> dict:
    """The LLM layer's own budget figures (its limits, its timezone, in-flight reservations)."""
    status_ = await asyncio.to_thread(request.app.state.llm.budget)
    return status_.as_dict()


@router.get("/budget", response_model=BudgetInfo)
async def get_budget(request: Request, principal: AdminDep):
    """Tokens used today and this month against the limits. The budget is the Bailian
    account's, enforced for all sites together, so this is the account-wide figure."""
    return await _budget(request)


@router.get("/dashboard", response_model=DashboardResponse)
async def get_dashboard(
    request: Request,
    site_id: AdminSiteDep,
    conn: ConnDep,
    settings: SettingsDep,
    range_days: Annotated[int, Query(ge=1, le=MAX_RANGE_DAYS, description="The last N days, today included.")] = 1,
    date_from: Annotated[date | None, Query(description="With date_to: an explicit range (inclusive).")] = None,
    date_to: date | None = None,
):
    """Calls, success rate, tokens and latency for a range (today by default), a daily trend
    (at least 7 days), app distribution, budget, recent alerts and each app's last call."""
    if (date_from is None) != (date_to is None):
        missing = "date_to" if date_to is None else "date_from"
        raise invalid("query", missing, "date_from and date_to go together")
    if date_from is None:
        date_to = datetime.now(UTC).astimezone(ZoneInfo(settings.venue.venue_timezone)).date()
        date_from = date_to - timedelta(days=range_days - 1)
    else:
        assert date_to is not None  # checked above: the two go together
        check_date_range(date_from, date_to)
        if (date_to - date_from).days >= MAX_RANGE_DAYS:
            raise invalid("query", "date_to", f"a range covers at most {MAX_RANGE_DAYS} days", str(date_to))
    return await dashboard_service.dashboard(
        conn,
        site_id,
        date_from=date_from,
        date_to=date_to,
        tz=settings.venue.venue_timezone,
        budget=await _budget(request),
    )
