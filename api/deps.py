"""Dependencies shared by the routers, as ``Annotated`` aliases."""

from collections.abc import AsyncIterator
from typing import Annotated

import psycopg
from fastapi import Depends, Request
from psycopg.rows import dict_row

from api.settings import Settings, get_settings


async def get_conn(request: Request) -> AsyncIterator[psycopg.AsyncConnection]:
    """A pooled connection for one request; the pool lives on the app (built in main.lifespan)."""
    async with request.app.state.pool.connection() as conn:
        conn.row_factory = dict_row
        yield conn


SettingsDep = Annotated[Settings, Depends(get_settings)]
ConnDep = Annotated[psycopg.AsyncConnection, Depends(get_conn)]
