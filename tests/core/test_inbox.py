"""The one INSERT into the inbox, executed as the producers (sync) and the API (async) do."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

import psycopg
import pytest
from psycopg.rows import dict_row

from zqyy_assets.core import db, inbox

DAY = date(2026, 3, 3)


def test_the_statement_returns_the_new_event(db_url: str) -> None:
    query, params = inbox.event_insert_query(
        event_type="task_assigned", site_id=1, member_id=100, assistant_id=7, payload={"task_id": 5}, biz_date=DAY
    )
    with db.transaction(db_url) as conn:
        row = conn.execute(query, params).fetchone()
        stored = conn.execute("SELECT * FROM biz.ai_events").fetchone()
    assert row is not None and stored is not None
    assert {k: row[k] for k in ("event_type", "site_id", "biz_date", "status", "is_forced")} == {
        "event_type": "task_assigned",
        "site_id": 1,
        "biz_date": DAY,
        "status": "pending",
        "is_forced": False,
    }
    assert (stored["id"], stored["payload"], stored["source"], stored["connector_type"]) == (
        row["id"],
        {"task_id": 5},
        "api",
        "feiqiu",
    )


def test_an_idempotency_key_inserts_once(db_url: str) -> None:
    query, params = inbox.event_insert_query(event_type="dws_completed", site_id=1, biz_date=DAY, idempotency_key="k1")
    with db.transaction(db_url) as conn:
        assert conn.execute(query, params).fetchone() is not None
        assert conn.execute(query, params).fetchone() is None
        assert conn.execute("SELECT count(*) AS n FROM biz.ai_events").fetchone() == {"n": 1}


def test_an_async_connection_executes_the_same_statement(db_url: str) -> None:
    query, params = inbox.event_insert_query(
        event_type="consumption", site_id=2, member_id=5, biz_date=DAY, is_forced=True, retry_of=None
    )

    async def insert() -> dict | None:
        async with await psycopg.AsyncConnection.connect(db_url, row_factory=dict_row) as conn:
            cur = await conn.execute(query, params)
            return await cur.fetchone()

    row = asyncio.run(insert())
    assert row is not None and (row["site_id"], row["is_forced"]) == (2, True)


def test_an_unknown_event_type_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown event type 'refund'"):
        inbox.event_insert_query(event_type="refund", site_id=1, biz_date=DAY)


def test_insert_event_cuts_the_business_date_in_the_callers_calendar(db_url: str) -> None:
    # 03:00 in Shanghai is still the previous business date there (the day turns at 06:00); with
    # the day turning at midnight, or in Kiritimati (09:00 there), it is the next one.
    moment = datetime.fromisoformat("2026-03-04T03:00:00+08:00")
    calendars = {"default": {}, "midnight": {"cutoff_hours": 0}, "kiritimati": {"timezone": "Pacific/Kiritimati"}}
    with db.transaction(db_url) as conn:
        ids = {
            name: inbox.insert_event(
                conn, event_type="consumption", site_id=1, member_id=n, occurred_at=moment, **calendar
            )
            for n, (name, calendar) in enumerate(calendars.items())
        }
        dates = {r["id"]: r["biz_date"] for r in conn.execute("SELECT id, biz_date FROM biz.ai_events")}
    assert {name: dates[event_id] for name, event_id in ids.items()} == {
        "default": date(2026, 3, 3),
        "midnight": date(2026, 3, 4),
        "kiritimati": date(2026, 3, 4),
    }
