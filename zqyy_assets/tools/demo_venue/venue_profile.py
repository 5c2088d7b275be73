"""The demo venue's layout, price lists, opening hours and member segments (the simulation's knobs)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AreaProfile:
    code: str
    name: str
    tables: int
    table_prefix: str
    price_cents: int  # per minute
    share: float  # of visits that want this area
    mean_minutes: int
    assistant_share: float  # of visits served by an assistant
    goods_prob: float
    goods_items: float  # mean items when something is bought


AREAS: tuple[AreaProfile, ...] = (
    AreaProfile("hallA", "A区大厅", 16, "A区", 60, 0.24, 100, 0.16, 0.55, 1.6),
    AreaProfile("hallB", "B区大厅", 14, "B区", 55, 0.19, 95, 0.14, 0.55, 1.5),
    AreaProfile("hallC", "C区大厅", 12, "C区", 45, 0.15, 90, 0.10, 0.50, 1.4),
    AreaProfile("vip", "VIP包厢", 6, "VIP", 120, 0.08, 150, 0.45, 0.85, 2.5),
    AreaProfile("snooker", "斯诺克", 6, "斯诺克", 90, 0.12, 110, 0.30, 0.50, 1.5),
    AreaProfile("mahjong", "麻将房", 10, "麻将房", 70, 0.13, 210, 0.03, 0.80, 2.2),
    AreaProfile("ktv", "KTV", 6, "KTV", 180, 0.09, 170, 0.35, 0.95, 3.0),
)
HALL_AREA_INDEXES = (0, 1, 2)
AREA_WEIGHTS = np.array([a.share for a in AREAS]) / sum(a.share for a in AREAS)

# Start-hour weights from 10:00 to 04:00 (hours past the business date's midnight: 10..28).
START_HOURS = np.arange(10, 29)
WEEKDAY_HOUR_WEIGHTS = np.array([1, 1.5, 2.5, 3, 4, 4.5, 5, 5.5, 7, 9, 13, 14, 12.5, 10, 7, 4.5, 2.5, 1.2, 0.5])
WEEKEND_HOUR_WEIGHTS = WEEKDAY_HOUR_WEIGHTS * np.array(  # weekend afternoons fill up too
    [1.5, 1.6, 1.7, 1.8, 1.8, 1.7, 1.5, 1.3, 1.1, 1, 1, 1, 1, 1, 1, 1.1, 1.1, 1.1, 1]
)
LAST_START = 28 * 3600 + 59 * 60  # 04:59
CLOSE = 29 * 3600 + 50 * 60  # tables are closed by 05:50; bills paid before 06:00

GOODS = (  # name, price in cents, weight
    ("矿泉水", 500, 14),
    ("可乐", 800, 14),
    ("雪碧", 800, 8),
    ("冰红茶", 600, 8),
    ("红牛", 1200, 12),
    ("啤酒", 1500, 12),
    ("柠檬茶", 1000, 6),
    ("咖啡", 1800, 5),
    ("瓜子", 1500, 5),
    ("小吃拼盘", 3800, 4),
    ("果盘", 4800, 4),
    ("泡面", 1000, 4),
)
GOODS_PRICES = [g[1] for g in GOODS]
GOODS_WEIGHTS = [g[2] for g in GOODS]
DRINKS = ("可乐", "雪碧", "红牛", "矿泉水", "冰红茶", "啤酒", "柠檬茶", "咖啡", "苏打水", "乌龙茶")

CARD_LEVELS = ("普通", "银卡", "金卡", "钻石")
LEVEL_PAY_PCT = (95, 90, 85, 80)  # share of the table fee a member pays at each card level
LEVEL_RECHARGE = (0, 500_00, 2000_00, 5000_00)  # cumulative recharge (cents) for each level
RECHARGE_OFFERS = ((500_00, 50_00), (1000_00, 150_00), (2000_00, 400_00), (3000_00, 700_00), (5000_00, 1500_00))

ASSISTANT_LEVELS = (("初级", 100, 0.35), ("中级", 130, 0.35), ("高级", 160, 0.2), ("金牌", 200, 0.1))

# Segments: name, share of members, daily visit probability range, share using a stored-value card.
SEGMENTS = (
    ("loyal", 0.10, (0.25, 0.45), 0.85),
    ("regular", 0.28, (0.08, 0.16), 0.6),
    ("occasional", 0.30, (0.02, 0.05), 0.3),
    ("churning", 0.17, (0.08, 0.18), 0.5),
    ("dormant", 0.15, (0.002, 0.008), 0.15),
)
LOYAL, REGULAR, OCCASIONAL, CHURNING, DORMANT = range(5)
SEGMENT_WEIGHTS = np.array([s[1] for s in SEGMENTS])
