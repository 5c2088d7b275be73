from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.database_away import RETRY_AFTER_S
from api.deps import ConnDep
from api.services import one_row

router = APIRouter(tags=["health"])


@router.get(
    "/api/health",
    responses={
        200: {"description": '`{"status": "ok", "database": "ok", "schema_version": N}`'},
        503: {"description": '`{"status": "error", "database": "unavailable", "detail": "..."}`: the database errs.'},
    },
)
async def health(conn: ConnDep) -> JSONResponse:
    """Liveness plus a real round trip to the database, with the applied schema version."""
    try:
        row = await one_row(await conn.execute("SELECT max(version) AS schema_version FROM public.schema_migrations"))
    except Exception as exc:  # the database answered with an error: report it, don't crash
        return JSONResponse(
            status_code=503,
            content={"status": "error", "database": "unavailable", "detail": str(exc)[:200]},
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return JSONResponse(content={"status": "ok", "database": "ok", "schema_version": row["schema_version"]})
