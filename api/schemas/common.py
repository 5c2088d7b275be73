"""Types shared by every resource."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Every id is a Postgres bigint: anything larger is a 422, never a database error.
MAX_BIGINT = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_BIGINT)]

AppType = Literal[
    "app2_finance",
    "app2a_finance_area",
    "app3_clue",
    "app4_analysis",
    "app5_tactics",
    "app6_note",
    "app7_customer",
    "app8_consolidation",
]
APP_TYPES: tuple[str, ...] = AppType.__args__  # type: ignore[attr-defined]

TimeDimension = Literal[
    "this_month",
    "last_month",
    "this_week",
    "last_week",
    "this_quarter",
    "last_quarter",
    "last_3_months",
    "last_6_months",
]
TIME_DIMENSIONS: tuple[str, ...] = TimeDimension.__args__  # type: ignore[attr-defined]

Area = Literal["all", "hall", "hallA", "hallB", "hallC", "vip", "snooker", "mahjong", "ktv"]
AREAS: tuple[str, ...] = Area.__args__  # type: ignore[attr-defined]

EventType = Literal["consumption", "note_created", "task_assigned", "dws_completed"]

# A cache target: `{time_dimension}__{area}`, a member id or `{assistant_id}_{member_id}`.
TARGET_ID_MAX_LENGTH, TARGET_ID_PATTERN = 100, r"^[A-Za-z0-9_]+$"
TargetId = Annotated[str, Field(min_length=1, max_length=TARGET_ID_MAX_LENGTH, pattern=TARGET_ID_PATTERN)]


def finance_app_type(area: str) -> str:
    """Area 'all' is answered by the whole-site app, every other area by the area app."""
    return "app2_finance" if area == "all" else "app2a_finance_area"


def finance_target_id(time_dimension: str, area: str) -> str:
    return f"{time_dimension}__{area}"


class Message(BaseModel):
    """An error body: FastAPI's shape, ``detail`` says what is wrong."""

    detail: str


class CamelModel(BaseModel):
    """The mini-program's JSON is camelCase; snake_case is accepted on input too."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
