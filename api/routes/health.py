from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ConnDep

router = APIRouter(tags=["health"])


@router.get("/api/health")
async def health(conn: ConnDep) -> JSONResponse:
    """Liveness plus a real round trip to the database, with the applied schema version."""
    try:
        row = await (
            await conn.execute("SELECT max(version) AS schema_version FROM public.schema_migrations")
        ).fetchone()
    except Exception as exc:  # the database answered with an error: report it, don't crash
        return JSONResponse(
            status_code=503, content={"status": "error", "database": "unavailable", "detail": str(exc)[:200]}
        )
    return JSONResponse(content={"status": "ok", "database": "ok", "schema_version": row["schema_version"]})
