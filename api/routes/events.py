"""Business-event intake: the POS connector, the mini-program and ops scripts post events here."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from api.deps import ConnDep, PrincipalDep, SettingsDep, SiteDep, check_site
from api.schemas.common import AUTH_ERRORS, BAD_BODY, NOT_FOUND, Id
from api.schemas.events import EventAccepted, EventIn, EventStatus
from api.services import events

router = APIRouter(prefix="/api/ai/events", tags=["events"], responses=AUTH_ERRORS)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=EventAccepted, responses=BAD_BODY)
async def post_event(body: EventIn, principal: PrincipalDep, conn: ConnDep, settings: SettingsDep):
    """Queue an event for the sensors; 202 with its id. Same-day duplicates are skipped there."""
    check_site(principal, body.site_id)
    events.require_event_fields(body.event_type, body.model_dump())
    return await events.insert_event(
        conn,
        settings,
        event_type=body.event_type,
        site_id=body.site_id,
        member_id=body.member_id,
        assistant_id=body.assistant_id,
        payload=body.payload,
        occurred_at=body.occurred_at,
    )


@router.get("/{event_id}", response_model=EventStatus, responses=NOT_FOUND)
async def get_event(event_id: Annotated[Id, Path()], site_id: SiteDep, conn: ConnDep):
    """Where an event is: pending, running (with its Dagster run ids), completed, failed or skipped."""
    row = await events.get_event(conn, site_id, event_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no event {event_id} at site {site_id}")
    return row
