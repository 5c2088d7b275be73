"""Back office: cache invalidation and the App2 prewarm progress."""

from fastapi import APIRouter

from api.deps import AdminDep, AdminSiteDep, ConnDep, check_site
from api.schemas.admin import (
    CacheInvalidateReq,
    CacheInvalidateResponse,
    PrewarmProgressResponse,
)
from api.schemas.common import AUTH_ERRORS, BAD_BODY
from api.services import admin

router = APIRouter(prefix="/api/admin/ai", tags=["admin: cache"], responses=AUTH_ERRORS)


@router.post("/cache/invalidate", response_model=CacheInvalidateResponse, responses=BAD_BODY)
async def invalidate_cache(body: CacheInvalidateReq, principal: AdminDep, conn: ConnDep):
    """Mark a site's valid answers invalidated (all, one app's, one member's); history is kept."""
    site_id = check_site(principal, body.site_id, "body")
    return {"affected_count": await admin.invalidate_cache(conn, site_id, body.app_type, body.member_id)}


@router.get("/prewarm/progress", response_model=PrewarmProgressResponse)
async def prewarm_progress(site_id: AdminSiteDep, conn: ConnDep):
    """The 72 App2 combinations (8 periods x 9 areas) of a site: done, missing, last update."""
    return await admin.prewarm_progress(conn, site_id)
