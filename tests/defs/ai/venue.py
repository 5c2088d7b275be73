"""The AI tests' venue: the DWS tests' small venue (site 1) plus what the AI apps read.

Site 1 gains a February visit (so comparison periods have figures), notes and a task; site 2 is
a second active site; site 3 is inactive (never asked about). DWS is computed from it directly.
Times are Asia/Shanghai (+08); the business day turns at 06:00.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import psycopg

from tests.databases import cloned_database
from tests.defs.dws.small_venue import SMALL_VENUE_SQL
from zqyy_assets.core import cache, db
from zqyy_assets.core import dws_sql as compute

AI_VENUE_SQL = (
    SMALL_VENUE_SQL
    + """
INSERT INTO ods.settlements (site_id, settlement_id, member_id, area_code, table_id, started_at, ended_at,
    settled_at, table_minutes, table_fee, assistant_fee, goods_amount, discount, total, pay_method) VALUES
 (1, 5, 101, 'hallA', 11, '2026-02-02 20:00+08', '2026-02-02 21:40+08', '2026-02-02 21:41+08',
  100, 100.00, 0.00, 60.00, 10.00, 150.00, '微信');
INSERT INTO ods.notes (site_id, note_id, member_id, assistant_id, content, created_at) VALUES
 (1, 1, 100, 7, '喜欢周末晚上来打中式八球，常带朋友一起', '2026-03-02 23:00+08'),
 (1, 2, 100, NULL, '反映VIP包厢空调太冷', '2026-03-03 06:30+08');
INSERT INTO ods.tasks (site_id, task_id, member_id, assistant_id, task_type, status, assigned_at, due_at) VALUES
 (1, 1, 100, 7, '回访', 'assigned', '2026-03-03 10:00+08', '2026-03-05 10:00+08');

INSERT INTO ods.sites (site_id, name) VALUES (2, '第二门店');
INSERT INTO ods.areas VALUES (2, 'hallB', 'B区大厅'), (2, 'snooker', '斯诺克');
INSERT INTO ods.tables VALUES (2, 31, 'hallB', 'B1', 1.00), (2, 41, 'snooker', 'S1', 1.50);
INSERT INTO ods.members (site_id, member_id, name, registered_at) VALUES (2, 200, '赵六', '2026-01-05 10:00+08');
INSERT INTO ods.settlements (site_id, settlement_id, member_id, area_code, table_id, started_at, ended_at,
    settled_at, table_minutes, table_fee, assistant_fee, goods_amount, discount, total, pay_method) VALUES
 (2, 1, 200,  'snooker', 41, '2026-03-01 20:00+08', '2026-03-01 22:00+08', '2026-03-01 22:00+08',
  120, 180.00, 0.00, 20.00, 0.00, 200.00, '会员卡'),
 (2, 2, NULL, 'hallB',   31, '2026-03-02 15:00+08', '2026-03-02 16:00+08', '2026-03-02 16:00+08',
   60,  60.00, 0.00,  0.00, 0.00,  60.00, '现金');

INSERT INTO ods.sites (site_id, name, is_active) VALUES (3, '停业门店', false);
INSERT INTO ods.areas VALUES (3, 'vip', 'VIP');
INSERT INTO ods.tables VALUES (3, 51, 'vip', 'V9', 2.00);
INSERT INTO ods.settlements (site_id, settlement_id, member_id, area_code, table_id, started_at, ended_at,
    settled_at, table_minutes, table_fee, assistant_fee, goods_amount, discount, total, pay_method) VALUES
 (3, 1, NULL, 'vip', 51, '2026-03-01 20:00+08', '2026-03-01 21:00+08', '2026-03-01 21:00+08',
  60, 120.00, 0.00, 0.00, 0.00, 120.00, '现金');
"""
)


def load_ai_venue(conn: psycopg.Connection) -> None:
    """ODS rows, then the DWS tables computed from them (Asia/Shanghai, cut-off 06:00)."""
    conn.execute(AI_VENUE_SQL)
    compute.refresh_finance_area_daily(conn, date(2026, 1, 1), date(2026, 3, 31), tz="Asia/Shanghai", cutoff_hours=6)
    compute.refresh_member_profile(conn, tz="Asia/Shanghai", cutoff_hours=6)
    compute.refresh_assistant_member(conn)


@contextmanager
def shared_ai_venue(server_url: str, template: str) -> Iterator[str]:
    """The AI venue in a database of its own (for a module's read-only tests), dropped on exit."""
    with cloned_database(server_url, template, prefix="zqyy_ai") as url:
        with db.transaction(url) as conn:
            load_ai_venue(conn)
        yield url


def cached_answer(
    conn: psycopg.Connection, app: str, target: str, answer: dict[str, Any], *, site_id: int = 1, **row: Any
) -> cache.CachedAnswer:
    """A valid cache row written as a run would write it; ``row`` overrides the test defaults."""
    fields: dict[str, Any] = {
        "input_hash": "h",
        "prompt_version": "v",
        "score": None,
        "triggered_by": "test",
        "provider": "offline",
        "model": None,
        "tokens_in": 0,
        "tokens_out": 0,
        "latency_ms": None,
        "dagster_run_id": None,
        **row,
    }
    return cache.insert_answer(conn, site_id=site_id, cache_type=app, target_id=target, result_json=answer, **fields)
