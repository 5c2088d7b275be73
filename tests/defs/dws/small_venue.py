"""A venue small enough to compute its DWS figures by hand (times in Asia/Shanghai, +08)."""

import psycopg

SMALL_VENUE_SQL = """
INSERT INTO ods.sites (site_id, name) VALUES (1, '测试门店');
INSERT INTO ods.areas VALUES (1, 'hallA', 'A区大厅'), (1, 'vip', 'VIP包厢');
INSERT INTO ods.tables VALUES (1, 11, 'hallA', 'A1', 1.00), (1, 21, 'vip', 'V1', 2.00);
INSERT INTO ods.members (site_id, member_id, name, registered_at) VALUES
    (1, 100, '张三', '2026-01-01 10:00+08'), (1, 101, '李四', '2026-02-01 10:00+08'),
    (1, 102, '王五', '2026-02-01 10:00+08');
INSERT INTO ods.assistants (site_id, assistant_id, name, fee_per_minute) VALUES (1, 7, '小美', 1.50);
INSERT INTO ods.settlements (site_id, settlement_id, member_id, area_code, table_id, started_at, ended_at,
    settled_at, table_minutes, table_fee, assistant_fee, goods_amount, discount, total, pay_method) VALUES
 -- business date 2026-03-02
 (1, 1, 100,  'hallA', 11, '2026-03-02 20:00+08', '2026-03-02 22:00+08', '2026-03-02 22:01+08',
  120, 120.00, 90.00, 35.50, 10.00, 235.50, '微信'),
 (1, 2, NULL, 'hallA', 11, '2026-03-03 01:00+08', '2026-03-03 02:30+08', '2026-03-03 02:31+08',
   90,  90.00,  0.00,  0.00,  0.00,  90.00, '现金'),
 (1, 4, 100,  'vip',   21, '2026-03-03 05:00+08', '2026-03-03 05:50+08', '2026-03-03 05:59:59+08',
  50, 100.00, 0.00, 0.00,  0.00, 100.00, '会员卡'),
 -- business date 2026-03-03
 (1, 3, 101,  'vip',   21, '2026-03-03 19:00+08', '2026-03-03 21:00+08', '2026-03-03 21:02+08',
  120, 240.00,  0.00, 100.00, 20.00, 320.00, '支付宝');
INSERT INTO ods.assistant_services VALUES
 (1, 1, 1, 7, 100, '2026-03-02 20:00+08', '2026-03-02 21:00+08', 60, 90.00);
INSERT INTO ods.recharges VALUES (1, 1, 101, 1000.00, 100.00, '微信', '2026-03-03 12:00+08');
"""


def load_small_venue(conn: psycopg.Connection) -> None:
    conn.execute(SMALL_VENUE_SQL)
