"""The domain's words, defined once: areas, time dimensions, event types, statuses and their
Chinese labels. Everything else (Dagster definitions, the API's types, prompts, the offline
analyst) imports them from here; the app names live in :mod:`zqyy_assets.core.apps`.
"""

from __future__ import annotations

from typing import Literal

# --------------------------------------------------------------------------- time and areas

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

# 'all' is the whole site; 'hall' is hallA + hallB + hallC.
Area = Literal["all", "hall", "hallA", "hallB", "hallC", "vip", "snooker", "mahjong", "ktv"]
AREAS: tuple[str, ...] = Area.__args__  # type: ignore[attr-defined]
HALL_AREAS: tuple[str, ...] = ("hallA", "hallB", "hallC")
WHOLE_SITE = "all"

TIME_DIMENSION_LABELS: dict[str, str] = {
    "this_month": "本月",
    "last_month": "上月",
    "this_week": "本周",
    "last_week": "上周",
    "this_quarter": "本季度",
    "last_quarter": "上季度",
    "last_3_months": "近三个月",
    "last_6_months": "近半年",
}
AREA_LABELS: dict[str, str] = {
    "all": "全店",
    "hall": "大厅",
    "hallA": "大厅A区",
    "hallB": "大厅B区",
    "hallC": "大厅C区",
    "vip": "VIP包厢",
    "snooker": "斯诺克区",
    "mahjong": "麻将房",
    "ktv": "KTV",
}

# ------------------------------------------------------------------------------ events

EventType = Literal["consumption", "note_created", "task_assigned", "dws_completed"]
CONSUMPTION: EventType = "consumption"
NOTE_CREATED: EventType = "note_created"
TASK_ASSIGNED: EventType = "task_assigned"
DWS_COMPLETED: EventType = "dws_completed"
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]

# The ids an event of each type must carry to run its chain.
REQUIRED_IDS: dict[str, tuple[str, ...]] = {
    CONSUMPTION: ("member_id",),
    NOTE_CREATED: ("member_id",),
    TASK_ASSIGNED: ("member_id", "assistant_id"),
    DWS_COMPLETED: (),
}
ID_LABELS: dict[str, str] = {"member_id": "会员", "assistant_id": "助教"}

# An inbox event, shown to the admin web as a "trigger job" (the seed's words): pending ->
# running (its runs requested) -> completed | failed, or pending -> skipped_duplicate.
EventStatus = Literal["pending", "running", "completed", "failed", "skipped_duplicate"]
EVENT_STATUSES: tuple[str, ...] = EventStatus.__args__  # type: ignore[attr-defined]
PENDING, RUNNING, COMPLETED, FAILED, SKIPPED_DUPLICATE = EVENT_STATUSES

# A Dagster run state that will not change any more (DagsterRunStatus values).
TERMINAL_RUN_STATUSES: tuple[str, ...] = ("SUCCESS", "FAILURE", "CANCELED")

# What a guard refusal is ledgered as.
REFUSAL_STATUSES: tuple[str, ...] = ("circuit_open", "rate_limited", "budget_exceeded")
# A call in the ledger (the admin web's "run logs"): running while in flight, then how it ended.
CallStatus = Literal["success", "failed", "timeout", "circuit_open", "rate_limited", "budget_exceeded", "running"]
CALL_STATUSES: tuple[str, ...] = CallStatus.__args__  # type: ignore[attr-defined]
TIMEOUT = "timeout"

# What went wrong, for an alert: every call that did not end in success (a refusal, a timeout,
# a failure) and every failed run. The seed's words.
AlertType = Literal["failed", "timeout", "circuit_open", "rate_limited", "budget_exceeded"]
ALERT_TYPES: tuple[str, ...] = AlertType.__args__  # type: ignore[attr-defined]
ALERT_TYPE_LABELS: dict[str, str] = {
    "failed": "调用失败",
    "timeout": "调用超时",
    "circuit_open": "熔断器已打开",
    "rate_limited": "限流超限",
    "budget_exceeded": "Token 预算超限",
}
# Where an alert is: pending (open, never handled) until acknowledged or ignored (closed).
AlertStatus = Literal["pending", "acknowledged", "ignored"]
ALERT_STATUSES: tuple[str, ...] = AlertStatus.__args__  # type: ignore[attr-defined]

# A cached answer (biz.ai_cache.status): readers serve the newest `valid` row. `invalidated` by an
# admin; `ungrounded`: it cites a number its prompt does not hold and its app's grounding check
# blocks (core/grounding), so it is kept in the history but never served.
CacheStatus = Literal["valid", "invalidated", "ungrounded"]
CACHE_STATUSES: tuple[str, ...] = CacheStatus.__args__  # type: ignore[attr-defined]
VALID: CacheStatus = "valid"
INVALIDATED: CacheStatus = "invalidated"
UNGROUNDED: CacheStatus = "ungrounded"

# ------------------------------------------------------------------------ dynamic partitions

MEMBERS = "members"  # key "{site_id}-{member_id}"
ASSISTANT_MEMBERS = "assistant_members"  # key "{site_id}-{assistant_id}_{member_id}"
