"""The business-event inbox (biz.ai_events): insert, read past a cursor, de-duplicate, track status.

Status: pending -> launched (runs requested) -> completed | failed, or pending ->
skipped_duplicate. Runs requested for an event are rows of biz.ai_event_runs; the status
sensor copies Dagster's run state there and :func:`refresh_event_status` rolls it up, in
SQL, so the API reads an event's status and run ids with one query.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from zqyy_assets.core.business_date import (
    DEFAULT_CUTOFF_HOURS,
    DEFAULT_TIMEZONE,
    business_date,
)
from zqyy_assets.core.tags import SPLIT_FROM_TAG
from zqyy_assets.core.vocabulary import (
    DWS_COMPLETED,
    EVENT_TYPES,
    TASK_ASSIGNED,
)


def venue_calendar_from_env() -> tuple[str, int]:
    return (
        os.environ.get("VENUE_TIMEZONE") or DEFAULT_TIMEZONE,
        int(os.environ.get("BUSINESS_DAY_CUTOFF_HOURS") or DEFAULT_CUTOFF_HOURS),
    )


# ------------------------------------------------------------------------------------- insert


def insert_event(
    conn: psycopg.Connection,
    *,
    event_type: str,
    site_id: int,
    member_id: int | None = None,
    assistant_id: int | None = None,
    payload: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
    is_forced: bool = False,
    source: str = "api",
    idempotency_key: str | None = None,
    retry_of: int | None = None,
    connector_type: str = "feiqiu",
    timezone: str | None = None,
    cutoff_hours: int | None = None,
) -> int | None:
    """Insert one event; its id, or None when ``idempotency_key`` was already inserted.

    The business date (the dedup day) is that of ``occurred_at`` (default now).
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}; known: {', '.join(EVENT_TYPES)}")
    env_tz, env_cutoff = venue_calendar_from_env()
    moment = occurred_at or datetime.now(UTC)
    biz_date = business_date(moment, timezone or env_tz, env_cutoff if cutoff_hours is None else cutoff_hours)
    row = conn.execute(
        """INSERT INTO biz.ai_events (event_type, site_id, member_id, assistant_id, biz_date, payload, is_forced,
                                      source, idempotency_key, retry_of, connector_type)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           ON CONFLICT (idempotency_key) DO NOTHING
           RETURNING id""",
        (
            event_type,
            site_id,
            member_id,
            assistant_id,
            biz_date,
            Jsonb(payload or {}),
            is_forced,
            source,
            idempotency_key,
            retry_of,
            connector_type,
        ),
    ).fetchone()
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
        if self.event_type == DWS_COMPLETED:
            return None
        if self.member_id is None:
            return f"{self.event_type} 事件缺少 member_id(会员)"
        if self.event_type == TASK_ASSIGNED and self.assistant_id is None:
            return "task_assigned 事件缺少 assistant_id(助教)"
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


def read_window(conn: psycopg.Connection, cursor: int, limit: int) -> list[Event]:
    """The next ``limit`` events after id ``cursor``, in id (= commit) order."""
    rows = conn.execute(
        f"SELECT {_EVENT_COLUMNS} FROM biz.ai_events e WHERE e.id > %s ORDER BY e.id LIMIT %s", (cursor, limit)
    ).fetchall()
    return _events(rows)


def read_events(conn: psycopg.Connection, event_ids: Iterable[int]) -> list[Event]:
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


# --------------------------------------------------------------------------- requested runs


@dataclass(frozen=True)
class PlannedRun:
    """A run the inbox sensor requests; persisted before the request so a re-evaluated tick
    asks for the very same run (same run key) instead of planning anew."""

    run_key: str
    job_name: str
    partition_key: str | None
    asset_names: tuple[str, ...]
    event_ids: tuple[int, ...]
    tags: dict[str, str]


def load_runs(conn: psycopg.Connection, run_keys: Iterable[str], *, splits: bool = True) -> list[PlannedRun]:
    """The planned runs of these keys; ``splits=False`` leaves out runs a split planned (the
    status sensor requests those, not the inbox sensor)."""
    rows = conn.execute(
        """SELECT run_key, job_name, partition_key, asset_names, event_ids, tags
           FROM biz.ai_event_runs WHERE run_key = ANY(%s) AND (%s OR NOT tags ? %s)
           ORDER BY requested_at, run_key""",
        (list(run_keys), splits, SPLIT_FROM_TAG),
    ).fetchall()
    return [
        PlannedRun(
            r["run_key"],
            r["job_name"],
            r["partition_key"],
            tuple(r["asset_names"]),
            tuple(r["event_ids"]),
            dict(r["tags"]),
        )
        for r in rows
    ]


def record_runs(conn: psycopg.Connection, runs: Sequence[PlannedRun]) -> None:
    for run in runs:
        conn.execute(
            """INSERT INTO biz.ai_event_runs (run_key, job_name, partition_key, asset_names, event_ids, tags)
               VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_key) DO NOTHING""",
            (run.run_key, run.job_name, run.partition_key, list(run.asset_names), list(run.event_ids), Jsonb(run.tags)),
        )


def record_decisions(
    conn: psycopg.Connection,
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
            """UPDATE biz.ai_events e SET status = 'launched', app_chain = c.chain
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


# ------------------------------------------------------------------------------------ status


def open_runs(conn: psycopg.Connection, limit: int = 2000) -> dict[str, datetime]:
    """Requested runs not over yet: run key -> when it was requested."""
    rows = conn.execute(
        "SELECT run_key, requested_at FROM biz.ai_event_runs WHERE finished_at IS NULL ORDER BY requested_at LIMIT %s",
        (limit,),
    ).fetchall()
    return {r["run_key"]: r["requested_at"] for r in rows}


@dataclass(frozen=True)
class RunState:
    run_key: str
    run_id: str
    status: str  # Dagster's DagsterRunStatus value
    started_at: datetime | None
    finished_at: datetime | None  # None until the run is over (a failure about to be retried is not over)
    error_message: str | None = None


def record_run_states(conn: psycopg.Connection, states: Sequence[RunState]) -> list[int]:
    """Copy Dagster's run states onto the requested runs; return the affected event ids."""
    if not states:
        return []
    rows = conn.execute(
        """UPDATE biz.ai_event_runs r
           SET dagster_run_id = s.run_id, run_status = s.status,
               started_at = coalesce(r.started_at, s.started_at),
               finished_at = s.finished_at, error_message = s.error
           FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::text[])
                AS s(run_key, run_id, status, started_at, finished_at, error)
           WHERE r.run_key = s.run_key AND r.finished_at IS NULL
             AND (r.dagster_run_id, r.run_status, r.finished_at, r.error_message)
                 IS DISTINCT FROM (s.run_id, s.status, s.finished_at, s.error)
           RETURNING r.event_ids""",
        (
            [s.run_key for s in states],
            [s.run_id for s in states],
            [s.status for s in states],
            [s.started_at for s in states],
            [s.finished_at for s in states],
            [s.error_message for s in states],
        ),
    ).fetchall()
    return sorted({event_id for r in rows for event_id in r["event_ids"]})


def record_split(conn: psycopg.Connection, run_key: str, runs: Sequence[PlannedRun]) -> None:
    """A failed range run is replaced by its events' own runs (in the caller's transaction)."""
    record_runs(conn, runs)
    conn.execute(
        "UPDATE biz.ai_event_runs SET split_into = %s WHERE run_key = %s", ([r.run_key for r in runs], run_key)
    )


def split_runs_to_request(conn: psycopg.Connection, found: Iterable[str]) -> list[PlannedRun]:
    """Runs a split planned that Dagster has not created yet (``found``: keys it has): the
    status sensor requests them again, so a tick lost after its commit loses none."""
    rows = conn.execute(
        "SELECT run_key FROM biz.ai_event_runs WHERE finished_at IS NULL AND tags ? %s AND NOT run_key = ANY(%s)",
        (SPLIT_FROM_TAG, list(found)),
    ).fetchall()
    return load_runs(conn, [r["run_key"] for r in rows])


def refresh_event_status(conn: psycopg.Connection, event_ids: Sequence[int]) -> int:
    """Roll the runs of each event up to the event: its run ids, start, and once every run is
    over, completed (all succeeded) or failed (any failed or was canceled). A split range run
    counts in the history (run ids, start) but not in the outcome: its replacements decide.
    Returns rows changed."""
    if not event_ids:
        return 0
    cur = conn.execute(
        """WITH agg AS (
               SELECT e.id,
                      coalesce(array_agg(r.dagster_run_id ORDER BY r.requested_at, r.run_key)
                               FILTER (WHERE r.dagster_run_id IS NOT NULL), '{}') AS run_ids,
                      min(r.started_at) AS started_at,
                      bool_and(r.finished_at IS NOT NULL) FILTER (WHERE r.split_into IS NULL) AS all_done,
                      bool_or(r.run_status IN ('FAILURE', 'CANCELED')) FILTER (WHERE r.split_into IS NULL) AS any_failed,
                      max(r.finished_at) FILTER (WHERE r.split_into IS NULL) AS finished_at,
                      string_agg(r.error_message, '; ' ORDER BY r.run_key) FILTER (WHERE r.split_into IS NULL) AS errors
               FROM biz.ai_events e JOIN biz.ai_event_runs r ON r.event_ids @> ARRAY[e.id]
               WHERE e.id = ANY(%s)
               GROUP BY e.id)
           UPDATE biz.ai_events e
           SET dagster_run_ids = agg.run_ids,
               started_at = coalesce(e.started_at, agg.started_at),
               status = CASE WHEN NOT agg.all_done THEN e.status
                             WHEN agg.any_failed THEN 'failed' ELSE 'completed' END,
               finished_at = CASE WHEN agg.all_done THEN agg.finished_at END,
               error_message = CASE WHEN agg.all_done AND agg.any_failed THEN agg.errors ELSE e.error_message END
           FROM agg
           WHERE e.id = agg.id AND e.status = 'launched'""",
        (list(event_ids),),
    )
    return cur.rowcount


def skipped_duplicates_on(conn: psycopg.Connection, site_id: int, day: date) -> int:
    """Events skipped as same-day duplicates at a site on a business date (the old admin's
    ``today_skipped_duplicates``)."""
    row = conn.execute(
        "SELECT count(*) AS n FROM biz.ai_events WHERE site_id = %s AND biz_date = %s AND status = 'skipped_duplicate'",
        (site_id, day),
    ).fetchone()
    return row["n"]
