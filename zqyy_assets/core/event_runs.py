"""Runs requested for inbox events (biz.ai_event_runs) and their outcome.

The inbox sensor plans and stores a run before requesting it; the status sensor copies
Dagster's run state onto it and :func:`refresh_event_status` rolls the runs up to their events,
in SQL, so the API reads an event's status and run ids with one query.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg.types.json import Jsonb

from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.tags import SPLIT_FROM_TAG

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


def load_runs(conn: DictConnection, run_keys: Iterable[str], *, splits: bool = True) -> list[PlannedRun]:
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


def record_runs(conn: DictConnection, runs: Sequence[PlannedRun]) -> None:
    # One pipelined batch (psycopg's executemany), not a round trip per run: a tick of 100
    # events plans ~50 runs, and one statement each was most of the tick (~90 of ~160 ms).
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO biz.ai_event_runs (run_key, job_name, partition_key, asset_names, event_ids, tags)
               VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (run_key) DO NOTHING""",
            [
                (r.run_key, r.job_name, r.partition_key, list(r.asset_names), list(r.event_ids), Jsonb(r.tags))
                for r in runs
            ],
        )


# ------------------------------------------------------------------------------------ status


def open_runs(conn: DictConnection, limit: int = 2000) -> dict[str, datetime]:
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


def record_run_states(conn: DictConnection, states: Sequence[RunState]) -> list[int]:
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


def record_split(conn: DictConnection, run_key: str, runs: Sequence[PlannedRun]) -> None:
    """A failed range run is replaced by its events' own runs (in the caller's transaction)."""
    record_runs(conn, runs)
    conn.execute(
        "UPDATE biz.ai_event_runs SET split_into = %s WHERE run_key = %s", ([r.run_key for r in runs], run_key)
    )


def split_runs_to_request(conn: DictConnection, found: Iterable[str]) -> list[PlannedRun]:
    """Runs a split planned that Dagster has not created yet (``found``: keys it has): the
    status sensor requests them again, so a tick lost after its commit loses none."""
    rows = conn.execute(
        "SELECT run_key FROM biz.ai_event_runs WHERE finished_at IS NULL AND tags ? %s AND NOT run_key = ANY(%s)",
        (SPLIT_FROM_TAG, list(found)),
    ).fetchall()
    return load_runs(conn, [r["run_key"] for r in rows])


def refresh_event_status(conn: DictConnection, event_ids: Sequence[int]) -> int:
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
                      bool_or(r.run_status IN ('FAILURE', 'CANCELED'))
                              FILTER (WHERE r.split_into IS NULL) AS any_failed,
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
           WHERE e.id = agg.id AND e.status = 'running'""",
        (list(event_ids),),
    )
    return cur.rowcount
