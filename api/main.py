"""Builds the FastAPI app. No Dagster code is imported at request time."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from api.routes import health
from api.settings import Settings, get_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings or get_settings()
    pool = AsyncConnectionPool(
        settings.database_url, min_size=settings.db_pool_min_size, max_size=settings.db_pool_max_size, open=False
    )
    await pool.open()
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """``settings`` is for tests; the served app reads the environment when it starts."""
    app = FastAPI(title="zqyy AI assets API", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    if settings is not None:
        app.dependency_overrides[get_settings] = lambda: settings
    app.include_router(health.router)
    return app


app = create_app()
