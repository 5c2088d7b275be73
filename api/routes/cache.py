"""Cached AI answers for the mini-program and the admin web: read-only, one site per request."""

import re
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from api.deps import ConnDep, LatestAnswersDep, SiteDep
from api.schemas.cache import CacheEntry, CacheHistory, FinanceInsights, MemberClues
from api.schemas.common import (
    AREAS,
    AUTH_ERRORS,
    NOT_FOUND,
    TIME_DIMENSIONS,
    AppType,
    Area,
    Id,
    TargetId,
    TimeDimension,
    invalid,
)
from api.services import cache_reads
from zqyy_assets.core.apps import APP2_AREA_APP, APP2_SITE_APP
from zqyy_assets.core.chains import ASSISTANT_MEMBER_APPS
from zqyy_assets.core.partition_keys import app2_app_name, app2_target_id

router = APIRouter(
    prefix="/api/ai",
    tags=["cached answers"],
    responses=AUTH_ERRORS | NOT_FOUND,
)

_MEMBER = re.compile(r"^[1-9][0-9]{0,18}$")
_ASSISTANT_MEMBER = re.compile(r"^[1-9][0-9]{0,18}_[1-9][0-9]{0,18}$")
_FINANCE = re.compile(r"^(?P<td>[a-z0-9_]+?)__(?P<area>[A-Za-z]+)$")


def _finance_app(area: str) -> str:
    return app2_app_name(area) if area in AREAS else APP2_AREA_APP


def check_target(app_type: str, target_id: str) -> None:
    """Each app has one target format; a wrong one is the caller's mistake, said plainly."""
    if app_type in (APP2_SITE_APP, APP2_AREA_APP):
        match = _FINANCE.match(target_id)
        # An unknown area is the area app's target (its read finds nothing), as it always was.
        if not match or match["td"] not in TIME_DIMENSIONS or _finance_app(match["area"]) != app_type:
            expected = "all" if app_type == "app2_finance" else "an area other than 'all'"
            raise invalid(
                "path",
                "target_id",
                f"target_id for {app_type} is '{{time_dimension}}__{{area}}' with area {expected}, got {target_id!r}",
                target_id,
            )
    elif app_type in ASSISTANT_MEMBER_APPS:
        if not _ASSISTANT_MEMBER.match(target_id):
            expected = "'{assistant_id}_{member_id}'"
            raise invalid("path", "target_id", f"target_id for {app_type} is {expected}, got {target_id!r}", target_id)
    elif not _MEMBER.match(target_id):
        raise invalid("path", "target_id", f"target_id for {app_type} is a member id, got {target_id!r}", target_id)


def _not_cached(app_type: str, target_id: str, site_id: int) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND, detail=f"no cached answer of {app_type} for target {target_id!r} at site {site_id}"
    )


async def latest_answer(answers: cache_reads.LatestAnswers, site_id: int, app_type: str, target_id: str) -> str | None:
    """The newest valid answer as its JSON body (CacheEntry's shape, built by Postgres), or None.

    Shared by the route below and its fast path (``api.fast_read``), which answers the same
    request without FastAPI's routing and dependencies when everything about it is in order."""
    check_target(app_type, target_id)
    return await answers.get(site_id, app_type, target_id)


@router.get("/cache/{app_type}/{target_id}", response_model=CacheEntry)
async def get_latest_answer(
    app_type: AppType,
    target_id: Annotated[TargetId, Path()],
    site_id: SiteDep,
    answers: LatestAnswersDep,
):
    """The newest valid answer of one app for one target."""
    body = await latest_answer(answers, site_id, app_type, target_id)
    if body is None:
        raise _not_cached(app_type, target_id, site_id)
    # Postgres built the body in CacheEntry's shape (its tests compare the two); sent as is.
    return Response(content=body, media_type="application/json")


@router.get("/cache/{app_type}/{target_id}/history", response_model=CacheHistory)
async def get_answer_history(
    app_type: AppType,
    target_id: Annotated[TargetId, Path()],
    site_id: SiteDep,
    conn: ConnDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
):
    """Every answer kept for the target, valid and invalidated, newest first."""
    check_target(app_type, target_id)
    rows, total = await cache_reads.history(conn, site_id, app_type, target_id, limit=limit, offset=offset)
    if total == 0:
        raise _not_cached(app_type, target_id, site_id)
    return {"items": rows, "total": total, "limit": limit, "offset": offset}


@router.get("/finance/insights", response_model=FinanceInsights)
async def get_finance_insights(time_dimension: TimeDimension, area: Area, site_id: SiteDep, conn: ConnDep):
    """App2's insights for a period and an area (`all` = the whole site)."""
    app_type, target_id = app2_app_name(area), app2_target_id(time_dimension, area)
    row = await cache_reads.latest_valid(conn, site_id, app_type, target_id)
    if row is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"no finance insights cached for {time_dimension} / {area} at site {site_id}",
        )
    insights = row["result"].get("insights") if isinstance(row["result"], dict) else None
    return {
        "site_id": site_id,
        "time_dimension": time_dimension,
        "area": area,
        "app_type": app_type,
        "target_id": target_id,
        "insights": insights if isinstance(insights, list) else [],
        "result": row["result"],
        "cache_id": row["id"],
        "generated_at": row["created_at"],
    }


@router.get("/members/{member_id}/clues", response_model=MemberClues)
async def get_member_clues(member_id: Annotated[Id, Path()], site_id: SiteDep, conn: ConnDep):
    """A member's retention clues (AI-derived and manual), newest first."""
    rows = await cache_reads.member_clues(conn, site_id, member_id)
    if not rows:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no retention clues for member {member_id} at site {site_id}"
        )
    return {"site_id": site_id, "member_id": member_id, "items": rows, "total": len(rows)}
