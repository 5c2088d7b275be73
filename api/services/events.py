"""Writes to and reads of the business-event inbox biz.ai_events (the sensors do the rest)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from fastapi.exceptions import RequestValidationError
from psycopg.rows import DictRow

from api.services import AsyncConn
from api.settings import Settings
from zqyy_assets.core import inbox
from zqyy_assets.core.business_date import business_date
from zqyy_assets.core.vocabulary import REQUIRED_IDS


def require_event_fields(event_type: str, fields: dict[str, Any]) -> None:
    """422 naming each id the event type needs but the body left out."""
    errors = [
        {
            "type": "missing",
            "loc": ("body", name),
            "msg": f"Field required: {name} is needed for a {event_type} event",
            "input": None,
        }
        for name in REQUIRED_IDS[event_type]
        if fields.get(name) is None
    ]
    if errors:
        raise RequestValidationError(errors)


async def insert_event(
    conn: AsyncConn,
    settings: Settings,
    *,
    event_type: str,
    site_id: int,
    member_id: int | None,
    assistant_id: int | None,
    payload: dict[str, Any],
    occurred_at: datetime | None = None,
    is_forced: bool = False,
    source: str = "api",
    retry_of: int | None = None,
    connector_type: str = "feiqiu",
    biz_date: date | None = None,
) -> DictRow:
    """Insert one pending event (the inbox's one INSERT, ``core.inbox``); its business date comes
    from ``occurred_at`` (default now) unless given."""
    if biz_date is None:
        moment = occurred_at or datetime.now(UTC)
        biz_date = business_date(moment, settings.venue.venue_timezone, settings.venue.business_day_cutoff_hours)
    query, params = inbox.event_insert_query(
        event_type=event_type,
        site_id=site_id,
        member_id=member_id,
        assistant_id=assistant_id,
        payload=payload,
        biz_date=biz_date,
        is_forced=is_forced,
        source=source,
        retry_of=retry_of,
        connector_type=connector_type,
    )
    row = await (await conn.execute(query, params)).fetchone()
    assert row is not None  # no idempotency key: the insert cannot conflict
    return row


_EVENT_COLUMNS = """id, event_type, site_id, member_id, assistant_id, biz_date, status, is_forced, source, app_chain,
                    dagster_run_ids, error_message, created_at, started_at, finished_at"""


async def get_event(conn: AsyncConn, site_id: int, event_id: int, *, detail: bool = False) -> DictRow | None:
    extra = ", payload, connector_type, retry_of" if detail else ""
    cur = await conn.execute(
        f"SELECT {_EVENT_COLUMNS}{extra} FROM biz.ai_events WHERE site_id = %s AND id = %s", (site_id, event_id)
    )
    return await cur.fetchone()
