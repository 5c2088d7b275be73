"""Business events posted to the AI inbox (biz.ai_events)."""

import json
from datetime import UTC, date, datetime
from typing import Any, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from api.schemas.common import EventType, Id
from zqyy_assets.core import vocabulary

MAX_PAYLOAD_BYTES = 16_384
# An event's time must be a real moment of the venue's life, not a sentinel.
_EARLIEST, _LATEST = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def _check_no_nul(value: Any, path: str = "payload") -> None:
    """Postgres text and jsonb cannot hold NUL characters; say where one is."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path} contains a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_no_nul(key, f"{path} key")
            _check_no_nul(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_no_nul(item, f"{path}[{index}]")


def check_payload(value: dict[str, Any], name: str = "payload") -> dict[str, Any]:
    _check_no_nul(value, name)
    if len(json.dumps(value, ensure_ascii=False).encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"{name} is larger than {MAX_PAYLOAD_BYTES} bytes")
    return value


class EventIn(BaseModel):
    """A business event. consumption and note_created need member_id; task_assigned needs
    member_id and assistant_id; dws_completed needs neither."""

    model_config = ConfigDict(extra="forbid")

    event_type: EventType
    site_id: Id
    member_id: Id | None = None
    assistant_id: Id | None = None
    occurred_at: AwareDatetime | None = Field(
        None, description="When it happened (with a UTC offset); default now. Sets the business date."
    )
    payload: dict[str, Any] = Field(default_factory=dict, description=f"Free JSON, at most {MAX_PAYLOAD_BYTES} bytes.")

    @field_validator("occurred_at")
    @classmethod
    def _plausible_time(cls, value: datetime | None) -> datetime | None:
        if value is not None and not (_EARLIEST <= value < _LATEST):
            raise ValueError("occurred_at must be between 2000-01-01 and 2100-01-01")
        return value

    @field_validator("payload")
    @classmethod
    def _payload(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_payload(value)


class EventAccepted(BaseModel):
    id: int
    event_type: str
    site_id: int
    biz_date: date
    status: str
    is_forced: bool


class EventStatus(BaseModel):
    id: int
    event_type: str
    site_id: int
    member_id: int | None
    assistant_id: int | None
    biz_date: date
    status: str = Field(description=" | ".join(get_args(vocabulary.EventStatus)))
    is_forced: bool
    source: str
    app_chain: str | None
    dagster_run_ids: list[str]
    error_message: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
