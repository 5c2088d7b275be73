"""Types shared by every resource. The domain's words (apps, time dimensions, areas, event
types) are the core's, re-exported here for the schemas and routes."""

from typing import Annotated, Any, Literal

from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from zqyy_assets.core.apps import APP_TYPES, AppType
from zqyy_assets.core.schedules import FIELDS as CRON_FIELDS
from zqyy_assets.core.schedules import check_cron
from zqyy_assets.core.vocabulary import AREAS, TIME_DIMENSIONS, Area, EventType, TimeDimension

__all__ = [
    "APP_TYPES",
    "AREAS",
    "TIME_DIMENSIONS",
    "AppType",
    "Area",
    "CamelModel",
    "CronExpression",
    "EventType",
    "Id",
    "Message",
    "invalid",
    "TargetId",
    "TimeDimension",
]

# Every id is a Postgres bigint: anything larger is a 422, never a database error.
MAX_BIGINT = 2**63 - 1
Id = Annotated[int, Field(ge=1, le=MAX_BIGINT)]

# A cache target: `{time_dimension}__{area}`, a member id or `{assistant_id}_{member_id}`.
TARGET_ID_MAX_LENGTH, TARGET_ID_PATTERN = 100, r"^[A-Za-z0-9_]+$"
TargetId = Annotated[str, Field(min_length=1, max_length=TARGET_ID_MAX_LENGTH, pattern=TARGET_ID_PATTERN)]

# A schedule's cron as Dagster accepts it; a bad one is a 422 naming the field and why.
CronExpression = Annotated[
    str,
    Field(min_length=1, max_length=200, description=f"Five fields: {CRON_FIELDS}, e.g. `0 10 * * *`."),
    AfterValidator(check_cron),
]


class Message(BaseModel):
    """An error body: FastAPI's shape, ``detail`` says what is wrong."""

    detail: str


# Every error answer as it is (the document declares each where it occurs). A 422 is always
# FastAPI's validation-error list (``HTTPValidationError``, declared by FastAPI for every
# operation with input): rules a schema cannot state (a field an app type needs, a date range,
# site_id with a token of several sites) answer in that shape too, through :func:`invalid`.
Responses = dict[int | str, dict[str, Any]]  # a route's `responses=`
UNAUTHORIZED: Responses = {401: {"model": Message, "description": "No token, or an unknown, revoked or expired one."}}
FORBIDDEN: Responses = {403: {"model": Message, "description": "Another site, or an admin path with a staff token."}}
THROTTLED: Responses = {
    429: {
        "model": Message,
        "description": "Too many invalid tokens from this client in a minute (`AUTH_FAILURES_PER_MINUTE`): "
        "refused whatever the token until `Retry-After` seconds have passed.",
        "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    }
}
AUTH_ERRORS: Responses = UNAUTHORIZED | THROTTLED | FORBIDDEN
NOT_FOUND: Responses = {404: {"model": Message, "description": "No such resource at this site."}}
CONFLICT: Responses = {409: {"model": Message, "description": "The resource is not in a state that allows this."}}
BAD_BODY: Responses = {400: {"model": Message, "description": "The body could not be read (not UTF-8 JSON)."}}
DAGSTER_AWAY: Responses = {503: {"model": Message, "description": "Dagster could not be asked; nothing was changed."}}

Location = Literal["path", "query", "body"]


def invalid(location: Location, field: str, message: str, value: Any = None) -> RequestValidationError:
    """A 422 naming the field, in the validation-error shape the document declares for every 422."""
    return RequestValidationError([{"type": "value_error", "loc": (location, field), "msg": message, "input": value}])


class CamelModel(BaseModel):
    """The mini-program's JSON is camelCase; snake_case is accepted on input too."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)
