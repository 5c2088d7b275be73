"""Live ODS ingestion writes each row with its event in one transaction; bulk loads write none;
the live-traffic command feeds a demo venue through that path."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from tests.defs.events.conftest import tick
from zqyy_assets.core import db, ingest
from zqyy_assets.tools.live_traffic import run_live_traffic

SETTLED = datetime.fromisoformat("2026-03-04T01:30:00+08:00")  # business date 2026-03-03


def settlement(settlement_id: int, member_id: int | None = 100) -> ingest.Settlement:
    return ingest.Settlement(
        site_id=1,
        settlement_id=settlement_id,
        member_id=member_id,
        area_code="hallA",
        table_id=11,
        started_at=SETTLED - timedelta(hours=2),
        ended_at=SETTLED - timedelta(minutes=1),
        settled_at=SETTLED,
        table_minutes=119,
        table_fee=Decimal("119.00"),
        assistant_fee=Decimal("90.00"),
        goods_amount=Decimal("0"),
        discount=Decimal("0"),
        total=Decimal("209.00"),
        pay_method="微信",
    )


def service(assistant_id: int = 7) -> ingest.AssistantService:
    return ingest.AssistantService(
        service_id=50,
        assistant_id=assistant_id,
        started_at=SETTLED - timedelta(hours=2),
        ended_at=SETTLED - timedelta(hours=1),
        minutes=60,
        fee=Decimal("90.00"),
    )


def count(db_url: str, sql: str) -> int:
    with db.connect(db_url) as conn:
        return conn.execute(sql).fetchone()["n"]


def events(db_url: str) -> list[dict]:
    with db.connect(db_url) as conn:
        return conn.execute("SELECT * FROM biz.ai_events ORDER BY id").fetchall()


def test_settlement_and_its_event_are_written_together(venue, db_url) -> None:
    with db.connect(db_url) as conn:
        event_id = ingest.ingest_live_settlement(conn, settlement(100), [service()])
        conn.commit()

    (event,) = events(db_url)
    assert event["id"] == event_id
    assert (event["event_type"], event["site_id"], event["member_id"], event["assistant_id"]) == (
        "consumption",
        1,
        100,
        7,
    )
    assert (event["biz_date"], event["source"], event["status"]) == (date(2026, 3, 3), "ods_ingest", "pending")
    assert event["payload"]["settlement_id"] == 100 and event["payload"]["assistant_ids"] == [7]
    assert event["idempotency_key"] == "ods:settlement:1:100"
    assert count(db_url, "SELECT count(*) AS n FROM ods.assistant_services WHERE settlement_id = 100") == 1


def test_a_row_that_fails_leaves_no_event(venue, db_url) -> None:
    with db.connect(db_url, autocommit=True) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
        ingest.ingest_live_settlement(conn, settlement(101), [service(assistant_id=999)])  # unknown assistant

    assert events(db_url) == []
    assert count(db_url, "SELECT count(*) AS n FROM ods.settlements WHERE settlement_id = 101") == 0


def test_walk_in_settlement_writes_no_event(venue, db_url) -> None:
    with db.connect(db_url, autocommit=True) as conn:
        assert ingest.ingest_live_settlement(conn, settlement(102, member_id=None)) is None

    assert events(db_url) == []
    assert count(db_url, "SELECT count(*) AS n FROM ods.settlements WHERE settlement_id = 102") == 1


def test_note_and_task_write_their_events(venue, db_url) -> None:
    with db.connect(db_url, autocommit=True) as conn:
        ingest.ingest_live_note(conn, ingest.Note(1, 10, 101, 7, "想参加周末的比赛", SETTLED))
        ingest.ingest_live_task(conn, ingest.Task(1, 10, 102, 7, "回访", SETTLED, SETTLED + timedelta(days=3)))

    note, task = events(db_url)
    assert (note["event_type"], note["member_id"], note["assistant_id"]) == ("note_created", 101, 7)
    assert note["payload"]["note_content"] == "想参加周末的比赛" and note["payload"]["noted_by_name"] == "小美"
    assert (task["event_type"], task["member_id"], task["assistant_id"]) == ("task_assigned", 102, 7)
    assert task["payload"]["task_type"] == "回访"


def test_bulk_demo_load_writes_no_events(db_url) -> None:
    from zqyy_assets.tools.demo_venue import generate_demo_venue

    counts = generate_demo_venue(db_url, sites=1, days=3, seed=5, end_date=date(2026, 3, 3), show_progress=False)

    assert counts["settlements"] > 0
    assert events(db_url) == []


def test_live_traffic_adds_rows_with_events_that_the_sensor_runs(venue, db_url, instance, postgres) -> None:
    said: list[str] = []

    counts = run_live_traffic(db_url, rate_per_minute=600, minutes=0.05, seed=3, say=said.append, sleep=lambda s: None)

    assert sum(counts.values()) == 30 and set(counts) <= {"settlement", "note", "task"}
    rows = events(db_url)
    walk_ins = count(db_url, "SELECT count(*) AS n FROM ods.settlements WHERE member_id IS NULL AND settlement_id > 4")
    assert len(rows) == 30 - walk_ins
    assert {r["source"] for r in rows} == {"ods_ingest"}
    assert count(db_url, "SELECT count(*) AS n FROM ods.settlements WHERE settlement_id > 4") == counts["settlement"]
    assert any("-> event" in line for line in said)

    result = tick(instance, postgres)
    decided = {r["status"] for r in events(db_url)}
    assert result.run_requests and decided <= {"running", "skipped_duplicate"}
