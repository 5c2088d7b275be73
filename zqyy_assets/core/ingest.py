"""Live ODS ingestion: each new settlement, note or task is written with its business event in
one transaction, so the venue's POS feed drives the pipeline with no extra call (and a row is
never stored without its event, nor an event without its row).

Bulk and historical loads (the demo generator, CSV back-fills) do not come through here and
write no events; a year of history must not flood the pipeline. An event's business date is
cut in the venue's calendar (``timezone``, ``cutoff_hours``: the caller's ``VenueSettings``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from zqyy_assets.core import inbox
from zqyy_assets.core.business_date import DEFAULT_CUTOFF_HOURS, DEFAULT_TIMEZONE
from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.vocabulary import CONSUMPTION, NOTE_CREATED, TASK_ASSIGNED


@dataclass(frozen=True)
class Settlement:
    site_id: int
    settlement_id: int
    member_id: int | None
    area_code: str
    table_id: int
    started_at: datetime
    ended_at: datetime
    settled_at: datetime
    table_minutes: int
    table_fee: Decimal
    assistant_fee: Decimal
    goods_amount: Decimal
    discount: Decimal
    total: Decimal
    pay_method: str


@dataclass(frozen=True)
class AssistantService:
    service_id: int
    assistant_id: int
    started_at: datetime
    ended_at: datetime
    minutes: int
    fee: Decimal


@dataclass(frozen=True)
class Note:
    site_id: int
    note_id: int
    member_id: int
    assistant_id: int | None
    content: str
    created_at: datetime


@dataclass(frozen=True)
class Task:
    site_id: int
    task_id: int
    member_id: int
    assistant_id: int
    task_type: str  # 回访 / 召回
    assigned_at: datetime
    due_at: datetime | None = None


def _insert(conn: DictConnection, table: str, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    placeholders = ", ".join(["%s"] * len(row))
    conn.execute(f"INSERT INTO ods.{table} ({columns}) VALUES ({placeholders})", list(row.values()))


def ingest_live_settlement(
    conn: DictConnection,
    settlement: Settlement,
    services: Sequence[AssistantService] = (),
    *,
    timezone: str = DEFAULT_TIMEZONE,
    cutoff_hours: int = DEFAULT_CUTOFF_HOURS,
) -> int | None:
    """Store a settlement (and its assistant services) and, for a member, its consumption event.

    Returns the event id; None for a walk-in (no member, no chain to run).
    """
    with conn.transaction():
        _insert(conn, "settlements", asdict(settlement))
        for service in services:
            _insert(
                conn,
                "assistant_services",
                {
                    "site_id": settlement.site_id,
                    "settlement_id": settlement.settlement_id,
                    "member_id": settlement.member_id,
                    **asdict(service),
                },
            )
        if settlement.member_id is None:
            return None
        assistants = list(dict.fromkeys(s.assistant_id for s in services))
        return inbox.insert_event(
            conn,
            event_type=CONSUMPTION,
            site_id=settlement.site_id,
            member_id=settlement.member_id,
            assistant_id=assistants[0] if assistants else None,
            payload={
                "settlement_id": settlement.settlement_id,
                "area_code": settlement.area_code,
                "table_id": settlement.table_id,
                "table_minutes": settlement.table_minutes,
                "total": str(settlement.total),
                "pay_method": settlement.pay_method,
                "settled_at": settlement.settled_at.isoformat(),
                "assistant_ids": assistants,
            },
            occurred_at=settlement.settled_at,
            source="ods_ingest",
            timezone=timezone,
            cutoff_hours=cutoff_hours,
            idempotency_key=f"ods:settlement:{settlement.site_id}:{settlement.settlement_id}",
        )


def ingest_live_note(
    conn: DictConnection, note: Note, *, timezone: str = DEFAULT_TIMEZONE, cutoff_hours: int = DEFAULT_CUTOFF_HOURS
) -> int | None:
    """Store a note about a member and its note_created event (payload as App6 reads it)."""
    with conn.transaction():
        _insert(conn, "notes", asdict(note))
        writer = None
        if note.assistant_id is not None:
            row = conn.execute(
                "SELECT name FROM ods.assistants WHERE site_id = %s AND assistant_id = %s",
                (note.site_id, note.assistant_id),
            ).fetchone()
            writer = row["name"] if row else None
        return inbox.insert_event(
            conn,
            event_type=NOTE_CREATED,
            site_id=note.site_id,
            member_id=note.member_id,
            assistant_id=note.assistant_id,
            payload={
                "note_id": note.note_id,
                "note_content": note.content,
                "noted_by_name": writer or "前台",
                "noted_by_created_at": note.created_at.isoformat(),
            },
            occurred_at=note.created_at,
            source="ods_ingest",
            timezone=timezone,
            cutoff_hours=cutoff_hours,
            idempotency_key=f"ods:note:{note.site_id}:{note.note_id}",
        )


def ingest_live_task(
    conn: DictConnection, task: Task, *, timezone: str = DEFAULT_TIMEZONE, cutoff_hours: int = DEFAULT_CUTOFF_HOURS
) -> int | None:
    """Store a follow-up task assigned to an assistant and its task_assigned event."""
    with conn.transaction():
        _insert(conn, "tasks", {**asdict(task), "status": "assigned"})
        return inbox.insert_event(
            conn,
            event_type=TASK_ASSIGNED,
            site_id=task.site_id,
            member_id=task.member_id,
            assistant_id=task.assistant_id,
            payload={
                "task_id": task.task_id,
                "task_type": task.task_type,
                "due_at": task.due_at.isoformat() if task.due_at else None,
            },
            occurred_at=task.assigned_at,
            source="ods_ingest",
            timezone=timezone,
            cutoff_hours=cutoff_hours,
            idempotency_key=f"ods:task:{task.site_id}:{task.task_id}",
        )
