"""Settings, one model per concern, each read from the environment (names in ``.env.example``).

A process reads them once, where it starts: the API in ``api.settings.get_settings``, the
Dagster code location in ``zqyy_assets/definitions.py`` (resources bound from ``EnvVar``, so
the Dagster UI shows them), a tool in its command. Nothing reads the environment at import.
The LLM layer's own model is :class:`zqyy_assets.core.llm.settings.LLMSettings`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from zqyy_assets.core.business_date import DEFAULT_CUTOFF_HOURS, DEFAULT_TIMEZONE
from zqyy_assets.core.grounding import DEFAULT_BLOCKING_APPS, GROUNDED_APPS
from zqyy_assets.core.prewarm_budget import parse_priority
from zqyy_assets.core.schedules import check_cron

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def blank_is_unset(value: Any) -> Any:
    """A blank variable (``FOO=``) means unset, not an empty string."""
    return None if isinstance(value, str) and not value.strip() else value


def _iana_zone(variable: str) -> Callable[[str | None], str | None]:
    def check(value: str | None) -> str | None:
        try:
            if value is not None:
                ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{variable} {value!r} is not an IANA time zone (e.g. Asia/Shanghai)") from None
        return value

    return check


class DatabaseSettings(BaseSettings):
    """Where the project's PostgreSQL is: ``DATABASE_URL``, else the embedded server."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: str | None = None
    # Where the embedded server keeps its data (one folder per use: demo, test, bench).
    zqyy_pgdata_root: Path = PROJECT_ROOT / ".pgdata"

    _blank = field_validator("database_url", mode="before")(blank_is_unset)


class VenueSettings(BaseSettings):
    """The venue's calendar: a business date is local time minus the cut-off, in this zone."""

    model_config = SettingsConfigDict(extra="ignore")

    venue_timezone: str = DEFAULT_TIMEZONE
    business_day_cutoff_hours: int = Field(DEFAULT_CUTOFF_HOURS, ge=0, le=23)

    _known_zone = field_validator("venue_timezone")(_iana_zone("VENUE_TIMEZONE"))


class PrewarmScheduleSettings(BaseSettings):
    """When the daily app2 prewarm runs: a cron in a zone (default the venue's). The cron is the
    default: one an admin saved (``core/schedules.py``) wins when the code location loads."""

    model_config = SettingsConfigDict(extra="ignore")

    app2_prewarm_cron: str = "0 10 * * *"
    app2_prewarm_timezone: str | None = None
    # Sites per prewarm run: the schedule requests one run per shard (core/prewarm_shards.py).
    app2_prewarm_shard_size: int = 100
    # When the budget cannot pay for the whole prewarm, the windows answered first, after area
    # 'all' (core/prewarm_budget.py); those not named follow in the default order.
    app2_prewarm_priority: str = "this_month,this_week"

    _blank = field_validator("app2_prewarm_timezone", mode="before")(blank_is_unset)
    _known_zone = field_validator("app2_prewarm_timezone")(_iana_zone("APP2_PREWARM_TIMEZONE"))

    @field_validator("app2_prewarm_cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        try:
            return check_cron(value)
        except ValueError as exc:
            raise ValueError(f"APP2_PREWARM_CRON: {exc}") from None

    @field_validator("app2_prewarm_shard_size")
    @classmethod
    def _positive_shard(cls, value: int) -> int:
        if value <= 0:
            raise ValueError(f"APP2_PREWARM_SHARD_SIZE must be at least 1, got {value}")
        return value

    @field_validator("app2_prewarm_priority")
    @classmethod
    def _known_windows(cls, value: str) -> str:
        parse_priority(value)
        return value

    def priority(self) -> tuple[str, ...]:
        return parse_priority(self.app2_prewarm_priority)

    def timezone(self, venue: VenueSettings) -> str:
        return self.app2_prewarm_timezone or venue.venue_timezone


class GroundingSettings(BaseSettings):
    """Which apps' grounded-numbers check blocks (``core/grounding``): an answer of theirs citing a
    number its prompt does not hold is kept in the history as ``ungrounded`` and not served, so
    the previous good answer stays. The other apps' verdicts are recorded and reported only.

    ``ZQYY_GROUNDING_BLOCKING_APPS``: app names, comma-separated; unset: the app2 apps; empty:
    none blocks."""

    model_config = SettingsConfigDict(extra="ignore")

    zqyy_grounding_blocking_apps: str = ",".join(DEFAULT_BLOCKING_APPS)

    @field_validator("zqyy_grounding_blocking_apps")
    @classmethod
    def _known_apps(cls, value: str) -> str:
        unknown = [name for name in _names(value) if name not in GROUNDED_APPS]
        if unknown:
            raise ValueError(
                f"ZQYY_GROUNDING_BLOCKING_APPS: {', '.join(unknown)} cite no checked figures; "
                f"known: {', '.join(GROUNDED_APPS)}"
            )
        return value

    @property
    def blocking_apps(self) -> frozenset[str]:
        return frozenset(_names(self.zqyy_grounding_blocking_apps))


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class MemberPartitionSettings(BaseSettings):
    """How long a `members` / `assistant_members` partition key lives without an event of its
    member (``core/member_keys.py``); the daily retirement deletes older keys."""

    model_config = SettingsConfigDict(extra="ignore")

    member_partition_retention_days: int = 90

    @field_validator("member_partition_retention_days")
    @classmethod
    def _at_least_a_day(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"MEMBER_PARTITION_RETENTION_DAYS must be 1 or more (days), not {value}")
        return value


class RealtimeSettings(BaseSettings):
    """The realtime channels (``/ws/ai-alerts``, ``/ws/ai-events``): replay window and bounds."""

    model_config = SettingsConfigDict(extra="ignore")

    # How long the outbox keeps a message: a client reconnecting with `since` gets what it
    # missed within this window. The API workers purge older rows every purge interval.
    realtime_retention_hours: float = Field(24.0, gt=0)
    realtime_purge_interval_s: float = Field(600.0, gt=0)
    # Messages waiting for one subscriber; past this it is closed with 4408 (too slow) and
    # reconnects with `since`, so the server never buffers without bound.
    realtime_queue_max: int = Field(1000, ge=1)
    # Bytes written to one subscriber's connection and not yet taken by the kernel; past this it
    # is closed with 4408 likewise (frames the hub writes itself skip the queue; api/ws_frames.py).
    realtime_send_buffer_max_bytes: int = Field(1_048_576, ge=1024)


class TelemetrySettings(BaseSettings):
    """OpenTelemetry traces (``core/telemetry.py``), from the standard ``OTEL_*`` variables.

    Off unless an OTLP endpoint is set; the exporter reads the other ``OTEL_EXPORTER_OTLP_*``
    variables (headers, timeout) itself. Prompt and answer text go on the LLM spans only when
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (they hold members' data)."""

    model_config = SettingsConfigDict(extra="ignore")

    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_traces_endpoint: str | None = None
    otel_service_name: str | None = None
    otel_sdk_disabled: bool = False
    otel_instrumentation_genai_capture_message_content: bool = False
    # The API requests not traced (comma-separated regexes searched in the path): the latest-answer
    # read, the health check and the scrape. They are the hot, LLM-free paths (thousands a second),
    # measured by /metrics; tracing each cut the cached reads to x0.24 (bench/bench_api.py).
    # Empty: trace every request.
    zqyy_untraced_paths: str = r"^/api/ai/cache/[^/]+/[^/]+$,^/api/health$,^/metrics$"

    _blank = field_validator(
        "otel_exporter_otlp_endpoint", "otel_exporter_otlp_traces_endpoint", "otel_service_name", mode="before"
    )(blank_is_unset)

    @property
    def enabled(self) -> bool:
        endpoint = self.otel_exporter_otlp_traces_endpoint or self.otel_exporter_otlp_endpoint
        return bool(endpoint) and not self.otel_sdk_disabled

    @property
    def service_name(self) -> str | None:
        return self.otel_service_name

    @property
    def capture_content(self) -> bool:
        return self.otel_instrumentation_genai_capture_message_content
