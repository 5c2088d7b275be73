"""The business-event inbox (biz.ai_events): insert, read past a cursor, record the inbox
sensor's decisions.

Status: pending -> running (runs requested) -> completed | failed, or pending ->
skipped_duplicate. The runs requested for an event and their outcome are ``event_runs.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, LiteralString

from psycopg.types.json import Jsonb

from zqyy_assets.core.business_date import (
    DEFAULT_CUTOFF_HOURS,
    DEFAULT_TIMEZONE,
    business_date,
)
from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.event_runs import PlannedRun, record_runs
from zqyy_assets.core.vocabulary import (
    EVENT_TYPES,
    ID_LABELS,
    REQUIRED_IDS,
)

# ------------------------------------------------------------------------------------- insert

# The one INSERT into the inbox: the API (async) and the producers here (sync) execute it.
# A producer's idempotency key makes a retried insert a no-op (no row returned).
_INSERT_EVENT: LiteralString = """
    INSERT INTO biz.ai_events (event_type, site_id, member_id, assistant_id, biz_date, payload, is_forced,
                               source, idempotency_key, retry_of, connector_type)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, event_type, site_id, biz_date, status, is_forced"""


def event_insert_query(
    *,
    event_type: str,
    site_id: int,
    member_id: int | None = None,
    assistant_id: int | None = None,
    payload: Mapping[str, Any] | None = None,
    biz_date: date,
    is_forced: bool = False,
    source: str = "api",
    idempotency_key: str | None = None,
    retry_of: int | None = None,
    connector_type: str = "feiqiu",
) -> tuple[LiteralString, tuple[Any, ...]]:
    """The statement and parameters that insert one pending event, for a sync or async cursor.

    It returns the row's ``id, event_type, site_id, biz_date, status, is_forced``; no row when
    ``idempotency_key`` was already inserted.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
    params = (
        event_type,
        site_id,
        member_id,
        assistant_id,
        biz_date,
        Jsonb(dict(payload or {})),
        is_forced,
        source,
        idempotency_key,
        retry_of,
        connector_type,
    )
    return _INSERT_EVENT, params


def insert_event(
    conn: DictConnection,
    *,
    event_type: str,
    site_id: int,
    member_id: int | None = None,
    assistant_id: int | None = None,
    payload: Mapping[str, Any] | None = None,
    occurred_at: datetime | None = None,
    is_forced: bool = False,
    source: str = "api",
    idempotency_key: str | None = None,
    retry_of: int | None = None,
    connector_type: str = "feiqiu",
    timezone: str = DEFAULT_TIMEZONE,
    cutoff_hours: int = DEFAULT_CUTOFF_HOURS,
) -> int | None:
    """Insert one event; its id, or None when ``idempotency_key`` was already inserted.

    The business date (the dedup day) is that of ``occurred_at`` (default now) in the venue's
    calendar, ``timezone`` and ``cutoff_hours`` (the caller's :class:`VenueSettings`).
    """
    moment = occurred_at or datetime.now(UTC)
    query, params = event_insert_query(
        event_type=event_type,
        site_id=site_id,
        member_id=member_id,
        assistant_id=assistant_id,
        payload=payload,
        biz_date=business_date(moment, timezone, cutoff_hours),
        is_forced=is_forced,
        source=source,
        idempotency_key=idempotency_key,
        retry_of=retry_of,
        connector_type=connector_type,
    )
    row = conn.execute(query, params).fetchone()
    return row["id"] if row else None


# ---------------------------------------------------------------------------- read past cursor


def decode_cursor(value: str | None) -> int:
    """The inbox sensor's cursor: the id of the last event handled (0 before the first)."""
    return int(value) if value else 0


@dataclass(frozen=True)
class Event:
    id: int
    event_type: str
    site_id: int
    member_id: int | None
    assistant_id: int | None
    biz_date: date
    payload: dict[str, Any]
    is_forced: bool
    status: str
    first_of_day: int | None = None  # the earliest event with the same dedup key, if not this one
    has_runs: bool = False  # runs were already requested (an earlier evaluation of this window)
    run_keys: tuple[str, ...] = field(default_factory=tuple)

    def invalid_reason(self) -> str | None:
        """Why this event cannot run (staff read it in the admin), or None."""
        for name in REQUIRED_IDS.get(self.event_type, ()):
            if getattr(self, name) is None:
                return f"{self.event_type} 事件缺少 {name}({ID_LABELS[name]})"
        return None

    def assistant_ids(self) -> list[int]:
        """Assistants who served: the event's own plus any the payload lists, in order, once each."""
        ids: list[int] = []
        for value in [self.assistant_id, *(self.payload.get("assistant_ids") or [])]:
            if value is not None and int(value) not in ids:
                ids.append(int(value))
        return ids


# The first valid event of the same (type, site, member, business date), if it came earlier.
# Events commit in id order (migration 0008), so every earlier one is already visible: this is
# a pure function of the inbox and a re-evaluated window decides exactly as before.
_FIRST_OF_DAY = """
    (SELECT p.id FROM biz.ai_events p
      WHERE p.event_type = e.event_type AND p.site_id = e.site_id AND p.biz_date = e.biz_date
        AND p.member_id IS NOT DISTINCT FROM e.member_id
        AND (p.event_type = 'dws_completed' OR p.member_id IS NOT NULL)
        AND (p.event_type <> 'task_assigned' OR p.assistant_id IS NOT NULL)
        AND p.id < e.id
      ORDER BY p.id LIMIT 1)"""


_EVENT_COLUMNS = f"""e.id, e.event_type, e.site_id, e.member_id, e.assistant_id,
    e.biz_date, e.payload, e.is_forced, e.status, {_FIRST_OF_DAY} AS first_of_day,
    coalesce((SELECT array_agg(r.run_key ORDER BY r.run_key) FROM biz.ai_event_runs r
              WHERE r.event_ids @> ARRAY[e.id]), '{{}}') AS run_keys"""


def read_window(conn: DictConnection, cursor: int, limit: int) -> list[Event]:
    """The next ``limit`` events after id ``cursor``, in id (= commit) order."""
    rows = conn.execute(
        f"SELECT {_EVENT_COLUMNS} FROM biz.ai_events e WHERE e.id > %s ORDER BY e.id LIMIT %s", (cursor, limit)
    ).fetchall()
    return _events(rows)


def read_events(conn: DictConnection, event_ids: Iterable[int]) -> list[Event]:
    """These events, in id order."""
    rows = conn.execute(
        f"SELECT {_EVENT_COLUMNS} FROM biz.ai_events e WHERE e.id = ANY(%s) ORDER BY e.id", (list(event_ids),)
    ).fetchall()
    return _events(rows)


def _events(rows: list[dict[str, Any]]) -> list[Event]:
    return [
        Event(
            id=r["id"],
            event_type=r["event_type"],
            site_id=r["site_id"],
            member_id=r["member_id"],
            assistant_id=r["assistant_id"],
            biz_date=r["biz_date"],
            payload=r["payload"] or {},
            is_forced=r["is_forced"],
            status=r["status"],
            first_of_day=r["first_of_day"],
            has_runs=bool(r["run_keys"]),
            run_keys=tuple(r["run_keys"]),
        )
        for r in rows
    ]


# ---------------------------------------------------------------------------- decisions


def record_decisions(
    conn: DictConnection,
    *,
    runs: Sequence[PlannedRun],
    chains_by_event: dict[int, str],
    duplicates: dict[int, int],
    invalid: dict[int, str],
) -> None:
    """Persist one window's decisions in the caller's transaction; every write is idempotent."""
    record_runs(conn, runs)
    if chains_by_event:
        conn.execute(
            """UPDATE biz.ai_events e SET status = 'running', app_chain = c.chain
               FROM unnest(%s::bigint[], %s::text[]) AS c(id, chain)
               WHERE e.id = c.id AND e.status = 'pending'""",
            (list(chains_by_event), list(chains_by_event.values())),
        )
    if duplicates:
        conn.execute(
            """UPDATE biz.ai_events e SET status = 'skipped_duplicate', duplicate_of = d.first_id, finished_at = now()
               FROM unnest(%s::bigint[], %s::bigint[]) AS d(id, first_id)
               WHERE e.id = d.id AND e.status = 'pending'""",
            (list(duplicates), list(duplicates.values())),
        )
    if invalid:
        conn.execute(
            """UPDATE biz.ai_events e SET status = 'failed', error_message = v.reason, finished_at = now()
               FROM unnest(%s::bigint[], %s::text[]) AS v(id, reason)
               WHERE e.id = v.id AND e.status = 'pending'""",
            (list(invalid), list(invalid.values())),
        )
