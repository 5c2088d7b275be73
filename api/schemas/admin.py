"""The AI back office (`/api/admin/ai/*`): field names follow the admin web client (seeds/000)."""

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool, field_validator

from api.schemas.common import AppType, Area, CronExpression, EventType, Id, TimeDimension
from api.schemas.events import check_payload
from zqyy_assets.core.vocabulary import AlertStatus, AlertType, CallStatus, EventStatus

EventStatusName = EventStatus


# ---- dashboard ----
class DailyTrend(BaseModel):
    date: str
    calls: int
    success_rate: float


class AppDistItem(BaseModel):
    app_type: str
    count: int
    percentage: float


class BudgetInfo(BaseModel):
    daily_used: int = Field(description="Tokens today (in-flight reservations included), all sites.")
    daily_limit: int
    daily_pct: float
    monthly_used: int
    monthly_limit: int
    monthly_pct: float
    daily_cost_cny: float = Field(0.0, description="CNY spent today (in-flight reservations included), all sites.")
    daily_cost_limit_cny: float | None = Field(None, description="ZQYY_LLM_DAILY_COST_LIMIT_CNY; None: no CNY limit.")
    monthly_cost_cny: float = 0.0
    monthly_cost_limit_cny: float | None = Field(None, description="ZQYY_LLM_MONTHLY_COST_LIMIT_CNY; None: no limit.")


class AppCostItem(BaseModel):
    app_type: str
    calls: int
    tokens: int
    cost_cny: float = Field(description="What the app's calls cost (each priced from its model's tokens).")
    memo_hits: int = Field(description="Answers memoization gave (unchanged input, no call).")
    memo_tokens_avoided: int
    memo_cost_avoided_cny: float = Field(description="What those calls would have cost (the app's recent average).")


class MemoSavings(BaseModel):
    hits: int
    tokens_avoided: int
    cost_avoided_cny: float


class AlertItem(BaseModel):
    id: int
    app_type: str
    status: AlertType = Field(description="What went wrong (the alert type).")
    alert_status: AlertStatus | None = Field(description="pending (open, never handled), acknowledged or ignored.")
    error_message: str | None = Field(description="The latest occurrence's message.")
    created_at: datetime = Field(description="The first occurrence.")
    last_seen_at: datetime = Field(description="The latest occurrence.")
    occurrences: int = Field(description="How many refused or failed calls or runs this open alert counts.")
    site_id: int | None = Field(None, description="None for a run-wide alert that belongs to no single site.")
    log_id: int | None = Field(None, description="The run log (call) of the first occurrence; None for a run.")
    dagster_run_id: str | None = None
    event_id: int | None = None


class AppHealthItem(BaseModel):
    app_type: str
    last_status: str | None
    last_call_at: datetime | None


class DashboardResponse(BaseModel):
    today_calls: int = Field(description="Calls in the selected range (today by default).")
    today_success_rate: float
    today_tokens: int
    today_cost_cny: float = Field(description="CNY the range's calls cost (rows priced when they ended).")
    cost_by_app: list[AppCostItem] = Field(description="Tokens and cost per app, with what memoization saved.")
    memo_savings: MemoSavings = Field(description="What memoization saved in the range, all apps.")
    today_avg_latency_ms: float
    trend_7d: list[DailyTrend] = Field(description="One point a day: the selected range, at least the last 7 days.")
    app_distribution: list[AppDistItem]
    budget: BudgetInfo
    recent_alerts: list[AlertItem]
    app_health: list[AppHealthItem]
    site_id: int
    date_from: date
    date_to: date


# ---- cache ----
class CacheInvalidateReq(BaseModel):
    site_id: Id
    app_type: AppType | None = None
    member_id: Id | None = Field(None, description="Also matches `{assistant_id}_{member_id}` targets.")


class CacheInvalidateResponse(BaseModel):
    affected_count: int


class PrewarmMissingItem(BaseModel):
    target_id: str
    time_dimension: str
    area: str


class PrewarmProgressResponse(BaseModel):
    site_id: int
    total: int
    done: int
    missing: list[PrewarmMissingItem]
    last_updated: datetime | None


# ---- alerts ----
class AlertListResponse(BaseModel):
    items: list[AlertItem]
    total: int
    page: int
    page_size: int


class AlertActionResponse(BaseModel):
    id: int
    alert_status: AlertStatus


# ---- trigger jobs (events) ----
class RunInfo(BaseModel):
    run_id: str
    status: str | None = Field(None, description="Dagster's run status; None when Dagster could not be asked.")
    url: str | None = Field(None, description="The run in Dagster's UI.")


class TriggerJobItem(BaseModel):
    id: int
    event_type: str
    member_id: int | None
    assistant_id: int | None = None
    status: EventStatus
    app_chain: str | None
    is_forced: bool
    site_id: int
    biz_date: date
    started_at: datetime | None
    finished_at: datetime | None
    created_at: datetime
    dagster_run_ids: list[str]
    runs: list[RunInfo] = Field(description="Each Dagster run of the event with its live status.")


class TriggerJobDetailResponse(TriggerJobItem):
    payload: dict[str, Any] | None
    error_message: str | None
    connector_type: str
    source: str
    retry_of: int | None


class TriggerJobListResponse(BaseModel):
    items: list[TriggerJobItem]
    total: int
    page: int
    page_size: int
    today_skipped_duplicates: int
    runs_error: str | None = Field(None, description="Set when Dagster could not be asked for run statuses.")


class RetryResponse(BaseModel):
    trigger_job_id: int
    status: str


class ManualTriggerRequest(BaseModel):
    event_type: EventType
    site_id: Id
    member_id: Id | None = None
    assistant_id: Id | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    # Strict: JSON true/false only (0 or "yes" is a 422, as the document says: a boolean).
    is_forced: StrictBool = Field(True, description="Manual triggers bypass the same-day de-duplication by default.")

    @field_validator("payload")
    @classmethod
    def _payload(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_payload(value)


class ManualTriggerResponse(BaseModel):
    trigger_job_id: int
    status: str


# ---- run one app ----
class RunAppRequest(BaseModel):
    site_id: Id
    member_id: Id | None = None
    assistant_id: Id | None = None
    time_dimension: TimeDimension | None = None
    area: Area | None = None
    # App6 (required for it): the note to analyse, instead of the member's newest note in ODS.
    note_content: str | None = Field(None, max_length=4000, description="app6_note: the note to analyse.")
    noted_by_name: str | None = Field(None, max_length=200, description="app6_note: who wrote the note.")
    noted_by_created_at: datetime | None = Field(
        None, description="app6_note: when the note was written (ISO 8601; without an offset, venue time)."
    )


class RunAppResponse(BaseModel):
    app_type: str
    success: bool
    result: dict[str, Any] | None
    error: str | None
    run_id: str | None = None
    run_status: str | None = None
    target_id: str | None = None


# ---- run logs (the LLM call ledger) ----
class RunLogItem(BaseModel):
    id: int
    app_type: str
    trigger_type: str
    member_id: int | None = Field(
        description="From the call's target: the member id, or the member of `{assistant}_{member}`."
    )
    target_id: str | None
    tokens_used: int
    cost_cny: float | None = Field(description="What the call cost (CNY); None for a call booked before costs were.")
    latency_ms: int | None
    status: CallStatus
    site_id: int
    created_at: datetime
    dagster_run_id: str | None
    dagster_run_url: str | None = Field(
        None, description="The run in Dagster's UI (DAGSTER_UI_URL, else the GraphQL URL's host); None for chat calls."
    )


class RunLogDetailResponse(RunLogItem):
    request_prompt: str | None
    response_text: str | None
    error_message: str | None
    error_code: str | None
    session_id: str | None
    finished_at: datetime | None
    provider: str
    model: str | None
    attempts: int


class RunLogListResponse(BaseModel):
    items: list[RunLogItem]
    total: int
    page: int
    page_size: int


# ---- triggers (Dagster sensors and schedules) ----
class TriggerItem(BaseModel):
    id: int = Field(description="Stable numeric id of the sensor or schedule (biz.admin_triggers).")
    job_name: str = Field(description="The sensor's or schedule's name in Dagster.")
    job_type: Literal["sensor", "schedule"]
    kind: Literal["sensor", "schedule"]
    trigger_condition: Literal["event", "cron"] = Field(description="event: a sensor; cron: a schedule.")
    trigger_config: dict[str, Any] = Field(
        description="Schedule: cron_expression, execution_timezone, jobs, cron_editable, and "
        "saved_cron_expression while a saved cron is not yet loaded by Dagster. "
        "Sensor: sensor_type, min_interval_seconds, jobs."
    )
    status: Literal["enabled", "disabled", "unknown"] = Field(
        description="Dagster's instigation state (RUNNING: enabled); unknown when Dagster could not be asked."
    )
    description: str | None = Field(description="The admin's note if set, else the description in code.")
    dagster_description: str | None
    last_run_at: datetime | None = Field(description="The newest tick (evaluation) of the sensor or schedule.")
    last_tick_status: str | None
    next_run_at: datetime | None = Field(description="The next tick while enabled.")
    last_error: str | None = Field(description="The newest tick's error when it failed.")
    dagster_url: str | None = Field(description="The sensor or schedule in Dagster's UI.")


class TriggerUpdateRequest(BaseModel):
    status: Literal["enabled", "disabled"] | None = None
    cron_expression: CronExpression | None = Field(
        None, description="The prewarm schedule only (trigger_config.cron_editable); see the endpoint."
    )
    description: str | None = Field(None, max_length=2000, description="The admin's note; an empty string clears it.")


# ---- batch run ----
class BatchRunReq(BaseModel):
    app_types: list[AppType] = Field(min_length=1, max_length=8)
    member_ids: list[Id] = Field(
        default_factory=list, max_length=100, description="The members of the member apps (App3-App8); unused by App2."
    )
    site_id: Id


class BatchRunEstimate(BaseModel):
    batch_id: str
    estimated_calls: int = Field(
        description="LLM calls the batch will make: memoized (unchanged-input) answers excluded."
    )
    estimated_tokens: int = Field(
        description="estimated_calls x each app's recent average tokens a call (ledger), else the default."
    )
    expires_at: datetime = Field(description="Confirm before this.")
    calls_by_app: dict[str, int]
    memoized_by_app: dict[str, int] = Field(description="Answers whose input is unchanged: no call.")
    skipped_by_app: dict[str, int] = Field(description="Targets with nothing to ask (no data, inactive site).")
    tokens_per_call: dict[str, int]
    runs_planned: int


class BatchRunConfirmReq(BaseModel):
    batch_id: str = Field(max_length=100)


class BatchRunInfo(BaseModel):
    run_id: str
    url: str | None
    job_name: str
    partition: str
    assets: list[str]


class BatchRunConfirmResponse(BaseModel):
    status: str = Field(description="launched: every planned run was launched (none when nothing needed a call).")
    batch_id: str
    runs: list[BatchRunInfo]
