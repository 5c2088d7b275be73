"""Demo venue generator: realistic ODS data for N sites x D business days, loaded with COPY.

What it simulates, per site (each site has its own random streams derived from the seed):

- seven areas and ~70 tables whose per-minute price depends on the area (VIP, KTV and snooker
  cost more than the main hall) and a little on the site and the table;
- members in segments: loyal (several visits a week), regular, occasional, churning (regular,
  then fading out over a few weeks, some of them won back by a 召回 task) and dormant; new
  members join every day (they register at the till on their first visit);
- walk-in customers (no member id), evening peaks (visits start 10:00-04:59, most 14:00-02:00,
  peaking 20:00-23:00; afternoons busier at weekends), weekend bumps and a fixed table of
  Chinese public holidays (``HOLIDAYS``);
- tables are really occupied: a visit takes a free table in its area (or another hall area),
  or waits for one, or leaves when the wait runs past closing time;
- assistants with weekly rosters who accompany a share of visits (more in VIP, KTV and
  snooker), regulars asking for "their" assistant, assistant_fee = minutes x fee_per_minute;
- goods and drinks, member discounts by card level, coupons for walk-ins, pay methods
  (微信, 支付宝, 会员卡, 现金; cash is rounded down to the yuan), stored-value recharges with
  bonus (at registration, or when the card balance runs short) and card levels that follow
  the amount recharged;
- notes in Chinese written by assistants (and sometimes the front desk) about members, from
  varied templates that agree with the member (favourite area, drink, birthday, fading visits);
- tasks: 回访 after a new member's first visit or a big bill, 召回 for regulars absent for
  three weeks; their status as of the end of the last generated business day.

Every visit ends before 06:00 (the venue closes at the business-date cut-off), so each
settlement's business date (``dws.business_date(settled_at, 'Asia/Shanghai', 6)``) is the day it
was generated for, even when the visit crosses midnight.

Ids are site-prefixed (``site_id * 100_000_000 + n``) so rows of two sites never share an id.
A site's rows depend only on (seed, site id, days, end date): the same arguments give identical
rows, and regenerating one site of several reproduces it exactly.

Loading: one transaction per run, COPY only. The static tables go first, then the daily tables
stream in chunks from a loader thread while the simulation continues; members' card levels
(which follow the recharges of the whole run) are set by one UPDATE at the end. Existing site
ids are refused unless ``replace=True``. Bulk loads write no business events.
"""

from __future__ import annotations

import math
import queue
import random
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
from psycopg import sql
from tqdm import tqdm

from zqyy_assets.core import db
from zqyy_assets.core.business_date import DEFAULT_CUTOFF_HOURS, DEFAULT_TIMEZONE
from zqyy_assets.tools.csv_io import ODS_TABLES, TABLE_SPECS

_TZ = ZoneInfo(DEFAULT_TIMEZONE)
ID_BLOCK = 100_000_000


class SitesExistError(RuntimeError):
    """The ODS already holds rows for some of the sites to generate (pass ``replace=True``)."""


# ---------------------------------------------------------------------------------------------
# Calendar


@dataclass(frozen=True)
class Holiday:
    name: str
    start: date
    end: date  # inclusive
    factor: float


def _fixed(year: int) -> list[Holiday]:
    return [
        Holiday("元旦", date(year, 1, 1), date(year, 1, 1), 1.3),
        Holiday("劳动节", date(year, 5, 1), date(year, 5, 5), 1.4),
        Holiday("国庆", date(year, 10, 1), date(year, 10, 7), 1.45),
    ]


# Holidays tied to the lunar calendar, as announced by the State Council (2026 from its notice,
# 2027 Spring Festival approximate). Years outside this table get the fixed-date ones only.
_LUNAR = [
    Holiday("春节", date(2023, 1, 21), date(2023, 1, 27), 1.3),
    Holiday("清明", date(2023, 4, 5), date(2023, 4, 5), 1.15),
    Holiday("端午", date(2023, 6, 22), date(2023, 6, 24), 1.3),
    Holiday("中秋", date(2023, 9, 29), date(2023, 9, 30), 1.35),
    Holiday("春节", date(2024, 2, 10), date(2024, 2, 17), 1.3),
    Holiday("清明", date(2024, 4, 4), date(2024, 4, 6), 1.2),
    Holiday("端午", date(2024, 6, 8), date(2024, 6, 10), 1.3),
    Holiday("中秋", date(2024, 9, 15), date(2024, 9, 17), 1.35),
    Holiday("春节", date(2025, 1, 28), date(2025, 2, 4), 1.3),
    Holiday("清明", date(2025, 4, 4), date(2025, 4, 6), 1.2),
    Holiday("端午", date(2025, 5, 31), date(2025, 6, 2), 1.3),
    Holiday("中秋", date(2025, 10, 6), date(2025, 10, 8), 1.4),
    Holiday("春节", date(2026, 2, 15), date(2026, 2, 23), 1.3),
    Holiday("清明", date(2026, 4, 4), date(2026, 4, 6), 1.2),
    Holiday("端午", date(2026, 6, 19), date(2026, 6, 21), 1.3),
    Holiday("中秋", date(2026, 9, 25), date(2026, 9, 27), 1.35),
    Holiday("春节", date(2027, 2, 5), date(2027, 2, 11), 1.3),
]
HOLIDAYS: tuple[Holiday, ...] = tuple(_LUNAR + [h for y in range(2020, 2031) for h in _fixed(y)])

# Spring Festival eve and day one people spend with family: the venue is quiet, then busy.
_CNY_EVE = {date(2023, 1, 21), date(2024, 2, 9), date(2025, 1, 28), date(2026, 2, 16), date(2027, 2, 5)}
_WEEKDAY_FACTOR = (0.86, 0.83, 0.88, 0.93, 1.12, 1.42, 1.28)  # Monday .. Sunday


def holiday(d: date) -> Holiday | None:
    return next((h for h in HOLIDAYS if h.start <= d <= h.end), None)


def day_factor(d: date) -> float:
    """Expected traffic of a business date relative to an average day (before random noise)."""
    if d in _CNY_EVE:
        return 0.55
    if d - timedelta(days=1) in _CNY_EVE:
        return 0.8
    h = holiday(d)
    f = max(_WEEKDAY_FACTOR[d.weekday()], h.factor) if h else _WEEKDAY_FACTOR[d.weekday()]
    if (d.month == 7 and d.day >= 10) or d.month == 8:  # students' summer holiday
        f *= 1.08
    return f


# ---------------------------------------------------------------------------------------------
# Venue layout and price lists


@dataclass(frozen=True)
class _Area:
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


AREAS: tuple[_Area, ...] = (
    _Area("hallA", "A区大厅", 16, "A区", 60, 0.24, 100, 0.16, 0.55, 1.6),
    _Area("hallB", "B区大厅", 14, "B区", 55, 0.19, 95, 0.14, 0.55, 1.5),
    _Area("hallC", "C区大厅", 12, "C区", 45, 0.15, 90, 0.10, 0.50, 1.4),
    _Area("vip", "VIP包厢", 6, "VIP", 120, 0.08, 150, 0.45, 0.85, 2.5),
    _Area("snooker", "斯诺克", 6, "斯诺克", 90, 0.12, 110, 0.30, 0.50, 1.5),
    _Area("mahjong", "麻将房", 10, "麻将房", 70, 0.13, 210, 0.03, 0.80, 2.2),
    _Area("ktv", "KTV", 6, "KTV", 180, 0.09, 170, 0.35, 0.95, 3.0),
)
_HALL = (0, 1, 2)
_AREA_P = np.array([a.share for a in AREAS]) / sum(a.share for a in AREAS)

# Start-hour weights from 10:00 to 04:00 (hours past the business date's midnight: 10..28).
_START_HOURS = np.arange(10, 29)
_WEEKDAY_HOUR_W = np.array([1, 1.5, 2.5, 3, 4, 4.5, 5, 5.5, 7, 9, 13, 14, 12.5, 10, 7, 4.5, 2.5, 1.2, 0.5])
_WEEKEND_HOUR_W = _WEEKDAY_HOUR_W * np.array(  # weekend afternoons fill up too
    [1.5, 1.6, 1.7, 1.8, 1.8, 1.7, 1.5, 1.3, 1.1, 1, 1, 1, 1, 1, 1, 1.1, 1.1, 1.1, 1]
)
_LAST_START = 28 * 3600 + 59 * 60  # 04:59
_CLOSE = 29 * 3600 + 50 * 60  # tables are closed by 05:50; bills paid before 06:00

_GOODS = (  # name, price in cents, weight
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
_GOODS_PRICES = [g[1] for g in _GOODS]
_GOODS_W = [g[2] for g in _GOODS]
_DRINKS = ("可乐", "雪碧", "红牛", "矿泉水", "冰红茶", "啤酒", "柠檬茶", "咖啡", "苏打水", "乌龙茶")

_LEVELS = ("普通", "银卡", "金卡", "钻石")
_LEVEL_PAY_PCT = (95, 90, 85, 80)  # share of the table fee a member pays at each card level
_LEVEL_RECHARGE = (0, 500_00, 2000_00, 5000_00)  # cumulative recharge (cents) for each level
_RECHARGES = ((500_00, 50_00), (1000_00, 150_00), (2000_00, 400_00), (3000_00, 700_00), (5000_00, 1500_00))

_ASSISTANT_LEVELS = (("初级", 100, 0.35), ("中级", 130, 0.35), ("高级", 160, 0.2), ("金牌", 200, 0.1))

# Segments: name, share of members, daily visit probability range, share using a stored-value card.
_SEGMENTS = (
    ("loyal", 0.10, (0.25, 0.45), 0.85),
    ("regular", 0.28, (0.08, 0.16), 0.6),
    ("occasional", 0.30, (0.02, 0.05), 0.3),
    ("churning", 0.17, (0.08, 0.18), 0.5),
    ("dormant", 0.15, (0.002, 0.008), 0.15),
)
_LOYAL, _REGULAR, _OCCASIONAL, _CHURNING, _DORMANT = range(5)
_SEG_P = np.array([s[1] for s in _SEGMENTS])

_SITES = (
    ("星聚台球·天河店", "广州"),
    ("星聚台球·南山店", "深圳"),
    ("星聚台球·西湖店", "杭州"),
    ("星聚台球·武侯店", "成都"),
    ("星聚台球·徐汇店", "上海"),
    ("星聚台球·朝阳店", "北京"),
    ("星聚台球·江汉店", "武汉"),
    ("星聚台球·鼓楼店", "南京"),
)
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史黎贺顾毛郝龚邵万钱覃武戴孔汤庞"
_GIVEN_M = "伟强磊军洋勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆志晨阳海峰亮东林博文轩睿哲航"
_GIVEN_F = "芳娜敏静丽艳娟霞燕玲婷雪琳倩颖慧瑶欣怡萱琪雨晴佳悦璐薇蕾梦露彤"

# Notes: categories of fragments; {area}, {drink}, {slot}, {month}, {day}, {n}, {amount}, {assistant}.
_NOTES = {
    "area": ("喜欢在{area}打，每次都要靠里面的台", "偏爱{area}，说那边安静", "基本只去{area}，对台面要求高"),
    "snooker": (
        "喜欢打斯诺克，想找人陪练长台",
        "斯诺克打得不错，想参加店里的斯诺克比赛",
        "最近迷上斯诺克，每次都问有没有空台",
    ),
    "mahjong": ("常约牌友来打麻将，一般四个人", "打麻将喜欢靠窗的房间，嫌烟味大"),
    "ktv": ("喜欢唱歌，常带同事来KTV包厢", "KTV包厢点歌机卡顿，提过一次意见"),
    "drink": ("喜欢喝{drink}，来了先备好", "只喝{drink}，不要加冰", "每次都点{drink}，可以推荐新品"),
    "time": ("一般{slot}来，来之前会打电话留台", "习惯{slot}来，待的时间比较长", "{slot}来得多，周末会带朋友"),
    "birthday": (
        "生日是{month}月{day}日，记得提前准备小礼物",
        "{month}月{day}日生日，说想在店里和朋友一起过",
        "下个月{month}月{day}日生日，可以送一小时台费",
    ),
    "complaint": (
        "反映{area}空调太冷，已跟前台说",
        "嫌球杆皮头磨损严重，建议更换",
        "对上次计时有异议，已解释清楚",
        "说包厢隔音差，隔壁太吵",
        "觉得饮料价格偏贵",
        "反映灯光有点暗，看球不舒服",
        "等台等了很久，有点不高兴",
    ),
    "churn": (
        "最近工作忙来得少，说月底忙完再来",
        "说公司经常加班，只有周末有空",
        "搬家了，离店远了，来得少",
        "最近在别家店打，说那边便宜",
        "家里有小孩要照顾，最近没时间",
        "说卡里余额用完就不充了，要观察一下",
    ),
    "social": (
        "常带朋友来，一般{n}个人",
        "带女朋友来，喜欢安静的位置",
        "和同事组队来，喜欢比赛氛围",
        "经常一个人来练球",
    ),
    "skill": (
        "球技进步很快，想学加塞和跳球",
        "新手，需要耐心教基本功",
        "技术很好，喜欢找高手切磋",
        "对中式八球很感兴趣，想参加店里比赛",
    ),
    "recharge": (
        "有充值意向，可以介绍{amount}档活动",
        "问过充值优惠，下次来可以再推荐",
        "卡里余额不多了，提醒过充值活动",
    ),
    "personality": (
        "性格开朗，爱聊天",
        "话不多，不喜欢被打扰",
        "很讲礼貌，每次都会说谢谢",
        "脾气有点急，输球容易不高兴",
    ),
    "assistant": ("点名要{assistant}陪练", "对{assistant}的服务很满意，下次还约"),
}
_NOTE_CATEGORIES = (
    "area",
    "drink",
    "time",
    "birthday",
    "complaint",
    "social",
    "skill",
    "recharge",
    "personality",
    "assistant",
)
_NOTE_WEIGHTS = (14, 12, 10, 7, 8, 10, 12, 6, 10, 6)


def _slot(hour: int) -> str:
    return "下午" if hour < 17 else "傍晚" if hour < 20 else "晚上" if hour < 24 else "半夜"


# ---------------------------------------------------------------------------------------------
# Rows (COPY column order)

COLUMNS: dict[str, tuple[str, ...]] = {t.name: tuple(c.name for c in t.columns) for t in TABLE_SPECS}


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _epoch(d: date, seconds: int = 0) -> int:
    return int(datetime.combine(d, time(), _TZ).timestamp()) + seconds


# ---------------------------------------------------------------------------------------------
# One site's simulation


class _Site:
    def __init__(self, site_id: int, seed: int, start: date, n_days: int):
        self.site_id = site_id
        self.start, self.n_days = start, n_days
        # Independent streams per site: numpy for vectors, random.Random for per-visit draws.
        self.np = np.random.default_rng([seed, site_id])
        self.rnd = random.Random(f"zqyy-demo:{seed}:{site_id}")
        self.rows: dict[str, list[tuple]] = {t: [] for t in ODS_TABLES}
        self.seq: dict[str, int] = dict.fromkeys(ODS_TABLES, 0)
        self.scale = float(self.np.uniform(0.85, 1.2))
        self.snapshot_end = _epoch(start + timedelta(days=n_days - 1), (24 + DEFAULT_CUTOFF_HOURS) * 3600)
        self._layout()
        self._assistants()
        self._members()

    def _id(self, table: str) -> int:
        self.seq[table] += 1
        return self.site_id * ID_BLOCK + self.seq[table]

    # -- static data -------------------------------------------------------------------------

    def _layout(self) -> None:
        name, city = _SITES[(self.site_id - 1) % len(_SITES)]
        if self.site_id > len(_SITES):
            name = f"{name}{(self.site_id - 1) // len(_SITES) + 1}号"
        opened = self.start - timedelta(days=int(self.np.integers(700, 2000)))
        self.opened = opened
        self.rows["sites"].append((self.site_id, name, city, opened, True))
        price_factor = float(self.np.choice([0.9, 1.0, 1.1]))
        self.table_ids: list[int] = []
        self.table_area: list[int] = []
        self.table_price: list[int] = []
        self.area_tables: list[list[int]] = []
        for a, area in enumerate(AREAS):
            self.rows["areas"].append((self.site_id, area.code, area.name))
            idx = []
            for n in range(1, area.tables + 1):
                # A few tables per area are the newer, dearer ones.
                price = round(area.price_cents * price_factor) + (5 if self.rnd.random() < 0.25 else 0)
                tid = self._id("tables")
                idx.append(len(self.table_ids))
                self.table_ids.append(tid)
                self.table_area.append(a)
                self.table_price.append(price)
                self.rows["tables"].append((self.site_id, tid, area.code, f"{area.table_prefix}{n:02d}号台", price))
            self.area_tables.append(idx)

    def _assistants(self) -> None:
        rnd, n = self.rnd, int(self.np.integers(14, 21))
        self.a_ids: list[int] = []
        self.a_names: list[str] = []
        self.a_fee: list[int] = []
        self.a_days: list[frozenset[int]] = []
        self.a_hired: list[int] = []
        self.a_left: list[int] = []
        for _ in range(n):
            level, fee, _w = rnd.choices(_ASSISTANT_LEVELS, weights=[lv[2] for lv in _ASSISTANT_LEVELS])[0]
            name = rnd.choice(_SURNAMES) + rnd.choice(_GIVEN_F) + (rnd.choice(_GIVEN_F) if rnd.random() < 0.6 else "")
            # Rosters lean on the weekend: Friday-Sunday are the days most assistants work.
            k = rnd.choices((4, 5, 6), weights=(0.15, 0.6, 0.25))[0]
            days = frozenset(_weighted_sample(rnd, range(7), (0.8, 0.8, 0.9, 1, 1.5, 2, 1.8), k))
            hired = -rnd.randint(30, 1000) if rnd.random() < 0.8 else rnd.randint(0, max(0, self.n_days - 1))
            left = rnd.randint(hired + 60, hired + 400) if rnd.random() < 0.12 else 10**9
            aid = self._id("assistants")
            self.a_ids.append(aid)
            self.a_names.append(name)
            self.a_fee.append(fee)
            self.a_days.append(days)
            self.a_hired.append(hired)
            self.a_left.append(left)
            active = left >= self.n_days
            self.rows["assistants"].append(
                (self.site_id, aid, name, level, fee, self.start + timedelta(days=hired), active)
            )
        self.a_free = [0] * n

    def _members(self) -> None:
        g, rnd = self.np, self.rnd
        n0 = int(round(900 * self.scale))
        new_per_day = g.poisson([1.4 * self.scale * day_factor(self.day(t)) for t in range(self.n_days)])
        reg_day = np.concatenate([np.full(n0, -1), np.repeat(np.arange(self.n_days), new_per_day)])
        m = len(reg_day)
        seg = g.choice(len(_SEGMENTS), size=m, p=_SEG_P)
        lo = np.array([s[2][0] for s in _SEGMENTS])[seg]
        hi = np.array([s[2][1] for s in _SEGMENTS])[seg]
        self.m_reg_day = reg_day
        self.m_seg = seg
        self.m_rate = g.uniform(lo, hi)
        churn = np.full(m, np.inf)
        is_churn = seg == _CHURNING
        initial = reg_day < 0
        churn[is_churn & initial] = g.uniform(-20, self.n_days + 30, size=int((is_churn & initial).sum()))
        late = is_churn & ~initial
        churn[late] = reg_day[late] + g.uniform(20, 120, size=int(late.sum()))
        self.m_churn = churn
        self.m_return = np.full(m, np.inf)
        self.m_weekend_only = g.random(m) < 0.1
        self.m_area = g.choice(len(AREAS), size=m, p=_AREA_P)
        self.m_hour = g.choice(_START_HOURS, size=m, p=_WEEKDAY_HOUR_W / _WEEKDAY_HOUR_W.sum())
        self.m_card = g.random(m) < np.array([s[3] for s in _SEGMENTS])[seg]
        self.m_ids = [self._id("members") for _ in range(m)]
        self.m_fav_asst = [-1] * m
        self.m_drink = [rnd.choice(_DRINKS) for _ in range(m)]
        self.m_birthday = [(rnd.randint(1, 12), rnd.randint(1, 28)) for _ in range(m)]
        self.m_female = (g.random(m) < 0.3).tolist()
        # Initial members bring history from before the window: recharges, a balance, a level.
        history = g.choice([500_00, 1000_00, 2000_00, 3000_00, 6000_00], size=m, p=[0.4, 0.3, 0.17, 0.08, 0.05])
        cum = np.where(initial & (g.random(m) < 0.45), history, 0)
        self.m_card = (self.m_card | (cum > 0)).tolist()
        self.m_cum = cum.astype(np.int64).tolist()
        self.m_balance = (cum * g.uniform(0, 0.8, size=m)).astype(np.int64).tolist()
        # Days since the last visit before the window (churned ones stopped at their churn day).
        gap = g.geometric(np.clip(self.m_rate, 0.005, 1))
        self.m_last = np.where(initial, np.minimum(churn, 0) - gap, reg_day).astype(float)
        self.m_last_recall = np.full(m, -(10**6), dtype=float)
        # New members register at the till when they first come: that visit starts at reg_ts.
        self.m_reg_ts: list[int] = []
        self.m_seen = [False] * m
        for i in range(m):
            if initial[i]:
                days_before = rnd.randint(1, max(2, (self.start - self.opened).days))
                ts = _epoch(self.start - timedelta(days=days_before), rnd.randint(11 * 3600, 26 * 3600))
            else:
                hour = min(max(int(self.m_hour[i]) + rnd.randint(-1, 1), 10), 28)
                ts = _epoch(self.day(int(reg_day[i])), min(hour * 3600 + rnd.randint(0, 3599), _LAST_START))
            self.m_reg_ts.append(ts)
            female = self.m_female[i]
            name = rnd.choice(_SURNAMES) + rnd.choice(_GIVEN_F if female else _GIVEN_M)
            if rnd.random() < 0.55:
                name += rnd.choice(_GIVEN_F if female else _GIVEN_M)
            phone = f"1{rnd.choice('3578')}{rnd.randint(0, 9)}****{rnd.randint(0, 9999):04d}"
            # The card level is written after the run (it follows this window's recharges).
            self.rows["members"].append(
                (self.site_id, self.m_ids[i], name, phone, "女" if female else "男", "普通", ts)
            )

    def day(self, t: int) -> date:
        return self.start + timedelta(days=t)

    # -- daily simulation ----------------------------------------------------------------------

    def simulate_day(self, t: int) -> None:
        g, rnd = self.np, self.rnd
        d = self.day(t)
        wd = d.weekday()
        weekend = wd >= 5 or holiday(d) is not None
        origin = _epoch(d)
        day_end = origin + (24 + DEFAULT_CUTOFF_HOURS) * 3600 - 1
        factor = day_factor(d) * float(g.lognormal(0, 0.07))
        on_duty = [j for j in range(len(self.a_ids)) if wd in self.a_days[j] and self.a_hired[j] <= t < self.a_left[j]]

        self._recalls(t, origin, on_duty)

        # Who comes today: members by their own rhythm, new members on their registration day.
        registered = self.m_reg_day <= t
        rate = self.m_rate * factor
        rate = np.where(self.m_weekend_only, rate * (2.2 if wd >= 5 else 0.3), rate)
        fading = np.where(t >= self.m_churn, np.exp(-(t - self.m_churn) / 7.0), 1.0)
        rate = rate * np.where(t >= self.m_return, 0.6, fading)
        come = registered & (g.random(len(rate)) < np.minimum(rate, 0.85))
        come |= self.m_reg_day == t
        members = np.flatnonzero(come)
        walkins = int(g.poisson(85 * self.scale * factor))
        who = np.concatenate([members, np.full(walkins, -1)])
        n = len(who)
        if n == 0:
            return

        hour_w = _WEEKEND_HOUR_W if weekend else _WEEKDAY_HOUR_W
        hours = g.choice(_START_HOURS, size=n, p=hour_w / hour_w.sum())
        is_member = who >= 0
        own_hour = is_member & (g.random(n) < 0.55)
        hours = np.where(own_hour, self.m_hour[np.maximum(who, 0)] + g.integers(-1, 2, size=n), hours)
        start = np.clip(hours * 3600 + g.integers(0, 3600, size=n), 10 * 3600, _LAST_START)
        newcomers = np.flatnonzero(self.m_reg_day[np.maximum(who, 0)] == t)
        newcomers = newcomers[who[newcomers] >= 0]
        start[newcomers] = [self.m_reg_ts[int(who[k])] - origin for k in newcomers]
        areas = g.choice(len(AREAS), size=n, p=_AREA_P)
        areas = np.where(is_member & (g.random(n) < 0.7), self.m_area[np.maximum(who, 0)], areas)
        means = np.array([a.mean_minutes for a in AREAS])[areas]
        minutes = np.clip(g.lognormal(np.log(means) - 0.1, 0.45), 15, 480).astype(int)
        order = np.argsort(start, kind="stable")

        table_free = [0] * len(self.table_ids)
        for k in order.tolist():
            m = int(who[k])
            self._visit(
                t, origin, day_end, m, int(areas[k]), origin + int(start[k]), int(minutes[k]), on_duty, table_free
            )

    def _visit(
        self,
        t: int,
        origin: int,
        day_end: int,
        m: int,
        area: int,
        start: int,
        minutes: int,
        on_duty: list[int],
        table_free: list[int],
    ) -> None:
        rnd = self.rnd
        site = self.site_id
        table = self._table(area, start, table_free)
        if table is None:
            table = min(self.area_tables[area], key=table_free.__getitem__)
            start = table_free[table] + rnd.randint(60, 600)  # waits for the next free table
            if start > origin + _LAST_START:
                table = None
        if table is not None:
            minutes = min(minutes, (origin + _CLOSE - start) // 60)
            if minutes < 10:
                table = None
        if table is None:  # gave up: the table never opened
            return
        area = self.table_area[table]
        end = start + minutes * 60
        table_free[table] = end + 300  # cleaning the table
        settled = min(end + rnd.randint(20, 300), day_end)
        sid = self._id("settlements")
        member_id = self.m_ids[m] if m >= 0 else None
        first_visit = m >= 0 and not self.m_seen[m] and self.m_reg_day[m] == t
        if m >= 0:
            self.m_seen[m] = True

        # Assistants: regulars ask for the one they know.
        spec = AREAS[area]
        assistant_fee = 0
        served_by: list[int] = []
        fav = self.m_fav_asst[m] if m >= 0 else -1
        if on_duty and rnd.random() < spec.assistant_share * (1.6 if fav >= 0 else 1.0):
            free = [j for j in on_duty if self.a_free[j] <= start]
            if free:
                served_by.append(fav if fav in free and rnd.random() < 0.7 else rnd.choice(free))
                if area in (3, 6) and len(free) > 1 and rnd.random() < 0.12:
                    served_by.append(rnd.choice([j for j in free if j != served_by[0]]))
        for j in served_by:
            svc = minutes if minutes <= 60 else max(60, int(minutes * rnd.uniform(0.55, 1.0)))
            delay = rnd.randint(0, min(10, minutes - svc))
            s_start = start + delay * 60
            fee = svc * self.a_fee[j]
            assistant_fee += fee
            self.a_free[j] = s_start + svc * 60 + 300
            self.rows["assistant_services"].append(
                (
                    site,
                    self._id("assistant_services"),
                    sid,
                    self.a_ids[j],
                    member_id,
                    s_start,
                    s_start + svc * 60,
                    svc,
                    fee,
                )
            )
            if m >= 0 and fav < 0 and rnd.random() < 0.5:
                self.m_fav_asst[m] = fav = j

        goods = 0
        if rnd.random() < spec.goods_prob:
            items = 1
            q = (spec.goods_items - 1) / spec.goods_items
            while rnd.random() < q and items < 12:
                items += 1
            goods = sum(rnd.choices(_GOODS_PRICES, weights=_GOODS_W, k=items))

        table_fee = minutes * self.table_price[table]
        if m >= 0:
            level = self._level(m)
            discount = table_fee - (table_fee * _LEVEL_PAY_PCT[level] + 50) // 100
        elif rnd.random() < 0.1:  # group-buying coupon
            discount = min(rnd.choice((10_00, 20_00, 30_00)), table_fee)
        else:
            discount = 0
        total = table_fee + assistant_fee + goods - discount

        if first_visit and rnd.random() < 0.35:
            self._recharge(m, start + rnd.randint(60, 300))
        pay = None
        if m >= 0 and self.m_card[m]:
            if self.m_balance[m] < total and rnd.random() < 0.6:
                self._recharge(m, settled - rnd.randint(5, 60))
            if self.m_balance[m] >= total and rnd.random() < 0.92:
                pay = "会员卡"
                self.m_balance[m] -= total
        if pay is None:
            pay = rnd.choices(("微信", "支付宝", "现金"), weights=(65, 27, 8))[0]
            if pay == "现金":  # cash is rounded down to the yuan
                discount += total % 100
                total -= total % 100
        self.rows["settlements"].append(
            (
                site,
                sid,
                member_id,
                spec.code,
                self.table_ids[table],
                start,
                end,
                settled,
                minutes,
                table_fee,
                assistant_fee,
                goods,
                discount,
                total,
                pay,
            )
        )

        if m < 0:
            return
        self.m_last[m] = t
        writer = served_by[0] if served_by else -1
        fading = self.m_churn[m] - 21 <= t <= self.m_churn[m] + 30 and self.m_return[m] > t
        if writer >= 0 and rnd.random() < (0.3 if fading else 0.12):
            self._note(m, writer, min(settled + rnd.randint(120, 3600), day_end), fading)
        elif rnd.random() < 0.005:  # the front desk writes a few too
            self._note(m, -1, min(settled + rnd.randint(60, 1800), day_end), False)
        if (first_visit and rnd.random() < 0.5) or (total >= 600_00 and rnd.random() < 0.25):
            asst = writer if writer >= 0 else fav if fav >= 0 else rnd.choice(on_duty) if on_duty else -1
            if asst >= 0:
                self._task(m, asst, "回访", min(settled + rnd.randint(300, 5400), day_end), 3)

    def _table(self, area: int, start: int, table_free: list[int]) -> int | None:
        free = [i for i in self.area_tables[area] if table_free[i] <= start]
        if not free and area in _HALL:  # the hall is one room: any free table in it will do
            free = [i for a in _HALL for i in self.area_tables[a] if table_free[i] <= start]
        return free[self.rnd.randrange(len(free))] if free else None

    def _level(self, m: int) -> int:
        cum = self.m_cum[m]
        return max(i for i, need in enumerate(_LEVEL_RECHARGE) if cum >= need)

    def _recharge(self, m: int, at: int) -> None:
        rnd = self.rnd
        big = self.m_seg[m] == _LOYAL
        amount, bonus = rnd.choices(_RECHARGES, weights=(20, 35, 25, 12, 8) if big else (45, 30, 15, 6, 4))[0]
        self.m_cum[m] += amount
        self.m_balance[m] += amount + bonus
        self.m_card[m] = True
        pay = rnd.choices(("微信", "支付宝", "现金"), weights=(60, 30, 10))[0]
        self.rows["recharges"].append((self.site_id, self._id("recharges"), self.m_ids[m], amount, bonus, pay, at))

    def _note(self, m: int, writer: int, at: int, fading: bool) -> None:
        rnd = self.rnd
        area = AREAS[int(self.m_area[m])]
        cats = ["churn"] if fading and rnd.random() < 0.7 else []
        while len(cats) < (1 if rnd.random() < 0.6 else 2):
            c = rnd.choices(_NOTE_CATEGORIES, weights=_NOTE_WEIGHTS)[0]
            if c == "area" and area.code in ("snooker", "mahjong", "ktv"):
                c = area.code
            if c == "assistant" and writer < 0:
                c = "personality"
            if c not in cats:
                cats.append(c)
        month, day = self.m_birthday[m]
        fav = self.m_fav_asst[m]
        fields = {
            "area": area.name,
            "drink": self.m_drink[m],
            "slot": _slot(int(self.m_hour[m])),
            "month": month,
            "day": day,
            "n": rnd.randint(2, 5),
            "amount": rnd.choice((1000, 2000, 3000)),
            "assistant": self.a_names[fav if fav >= 0 else max(writer, 0)],
        }
        text = rnd.choice("，；").join(rnd.choice(_NOTES[c]).format(**fields) for c in cats)
        aid = self.a_ids[writer] if writer >= 0 else None
        self.rows["notes"].append((self.site_id, self._id("notes"), self.m_ids[m], aid, text, at))

    def _task(self, m: int, asst: int, kind: str, assigned: int, due_days: int) -> int | None:
        """Write a task with its state as of the end of the generated window; returns completion time."""
        rnd = self.rnd
        due = assigned + due_days * 86400
        r = rnd.random()
        done_at: int | None = None
        status = "assigned"
        if r < 0.75:
            done_at = assigned + rnd.randint(3600, due_days * 86400)
            status = "done"
        elif r < 0.83:
            status = "cancelled"
        if done_at is not None and done_at > self.snapshot_end:
            done_at, status = None, "assigned"
        elif status == "cancelled" and assigned + 86400 > self.snapshot_end:
            status = "assigned"
        self.rows["tasks"].append(
            (self.site_id, self._id("tasks"), self.m_ids[m], self.a_ids[asst], kind, status, assigned, due, done_at)
        )
        return done_at

    def _recalls(self, t: int, origin: int, on_duty: list[int]) -> None:
        """召回: regulars (by their usual rhythm) absent three weeks, at most a few a day."""
        if not on_duty:
            return
        rnd = self.rnd
        eligible = np.flatnonzero(
            (self.m_reg_day < t) & (self.m_rate >= 0.07) & (t - self.m_last >= 21) & (t - self.m_last_recall >= 45)
        )
        if eligible.size == 0:
            return
        chosen = self.np.permutation(eligible)[: int(self.np.integers(1, 5))]
        for m in sorted(chosen.tolist()):
            fav = self.m_fav_asst[m]
            asst = fav if fav in on_duty else rnd.choice(on_duty)
            self.m_last_recall[m] = t
            done = self._task(m, asst, "召回", origin + 14 * 3600 + rnd.randint(0, 3 * 3600), 7)
            # Some of those called back really return, at a calmer pace than before.
            if done is not None and t >= self.m_churn[m] and rnd.random() < 0.3:
                self.m_return[m] = t + math.ceil((done - origin) / 86400)

    def levels(self) -> list[tuple[int, str]]:
        """(member_id, level) for members whose card level is no longer the default."""
        return [(self.m_ids[m], _LEVELS[lv]) for m in range(len(self.m_ids)) if (lv := self._level(m)) > 0]


def _weighted_sample(rnd: random.Random, items: Iterable[int], weights: Sequence[float], k: int) -> list[int]:
    pool, w = list(items), list(weights)
    out = []
    for _ in range(k):
        i = rnd.choices(range(len(pool)), weights=w)[0]
        out.append(pool.pop(i))
        w.pop(i)
    return out


# ---------------------------------------------------------------------------------------------
# Loading: COPY text format, written by hand (faster than adapting every value)

_DAY_TEXT: dict[int, str] = {}


def _ts_text(epoch: int) -> str:
    """Epoch seconds as a UTC timestamptz literal (the server stores UTC anyway)."""
    day, sec = divmod(epoch, 86400)
    text = _DAY_TEXT.get(day)
    if text is None:
        text = _DAY_TEXT[day] = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
    return f"{text} {sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}+00"


def _text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


_FORMAT = {
    "int": str,
    "int4": str,
    "text": _text,
    "money": _money,
    "timestamp": _ts_text,
    "date": date.isoformat,
    "bool": lambda b: "t" if b else "f",
}
_FORMATTERS = {t.name: tuple(_FORMAT[c.kind] for c in t.columns) for t in TABLE_SPECS}


def _copy_text(table: str, rows: Iterable[tuple]) -> bytes:
    fmts = _FORMATTERS[table]
    lines = ["\t".join([f(v) if v is not None else "\\N" for f, v in zip(fmts, row)]) for row in rows]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _copy_stmt(table: str) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier("ods", table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS[table]))
    )


def _copy_all(conn: psycopg.Connection, table: str, rows: list[tuple]) -> None:
    with conn.cursor() as cur, cur.copy(_copy_stmt(table)) as copy:
        for i in range(0, len(rows), 10_000):
            copy.write(_copy_text(table, rows[i : i + 10_000]))


def _existing_sites(conn: psycopg.Connection, site_ids: list[int]) -> list[int]:
    rows = conn.execute("SELECT site_id FROM ods.sites WHERE site_id = ANY(%s) ORDER BY 1", (site_ids,)).fetchall()
    return [r["site_id"] for r in rows]


def delete_sites(conn: psycopg.Connection, site_ids: list[int]) -> None:
    """Remove every ODS row of these sites (children first). The caller owns the transaction."""
    others = conn.execute("SELECT count(*) AS n FROM ods.sites WHERE NOT (site_id = ANY(%s))", (site_ids,)).fetchone()
    if others["n"] == 0:
        # Only these sites are loaded: TRUNCATE is instant, where DELETE pays a foreign-key check
        # per row against tables with no index on the referencing columns.
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.Identifier("ods", t) for t in ODS_TABLES))
                )
            return
        except psycopg.errors.FeatureNotSupported:
            pass  # another schema references ODS: fall back to DELETE
    for table in reversed(ODS_TABLES):
        stmt = sql.SQL("DELETE FROM {} WHERE site_id = ANY(%s)").format(sql.Identifier("ods", table))
        conn.execute(stmt, (site_ids,))


_STATIC = ("sites", "areas", "tables", "members", "assistants")
_DAILY = ("settlements", "assistant_services", "recharges", "notes", "tasks")  # foreign-key order
_CHUNK_ROWS = 10_000  # settlements per COPY statement (~6 weeks of one site)


class _Loader:
    """Runs COPY statements on a worker thread, in the order they were queued.

    Foreign-key checks are AFTER triggers that fire when each COPY statement ends; streaming
    a few days per statement lets Postgres check one chunk while Python simulates the next.
    The connection is used only by this thread between start and close.
    """

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="ods-demo-loader", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain: the transaction is lost anyway
            table, data = item
            try:
                with self.conn.cursor() as cur, cur.copy(_copy_stmt(table)) as copy:
                    copy.write(data)
            except BaseException as exc:  # handed to the caller's thread in put() / close()
                self.error = exc

    def put(self, table: str, rows: list[tuple]) -> None:
        if self.error is not None:
            raise self.error
        if rows:
            self.queue.put((table, _copy_text(table, rows)))

    def close(self, reraise: bool = True) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and reraise:
            raise self.error


def generate_demo_venue(
    database_url: str,
    *,
    sites: int,
    days: int,
    seed: int,
    end_date: date,
    show_progress: bool = True,
    replace: bool = False,
    first_site_id: int = 1,
) -> dict[str, int]:
    """Generate ``sites`` demo venues (site ids ``first_site_id`` ..) for the ``days`` business
    dates ending at ``end_date`` (inclusive) and load them in one transaction.

    Refuses with :class:`SitesExistError` when the ODS already has any of those site ids, unless
    ``replace=True``, which first deletes those sites' ODS rows (DWS and other derived data are
    not touched). Writes no business events. Returns the number of rows written per ODS table.
    """
    if sites < 1 or days < 1:
        raise ValueError("sites and days must be at least 1")
    if not 1 <= first_site_id <= 2**63 // ID_BLOCK - sites:
        raise ValueError(f"first_site_id must be between 1 and {2**63 // ID_BLOCK - sites} (ids are site-prefixed)")
    site_ids = list(range(first_site_id, first_site_id + sites))
    start = end_date - timedelta(days=days - 1)
    counts = dict.fromkeys(ODS_TABLES, 0)
    with db.transaction(database_url) as conn:
        existing = _existing_sites(conn, site_ids)
        if existing and not replace:
            raise SitesExistError(
                f"the ODS already has site(s) {', '.join(map(str, existing))}; pass replace=True (CLI: --replace) "
                "to delete and regenerate them, or choose another first site id"
            )
        if existing:
            delete_sites(conn, site_ids)

        sims = [_Site(site_id, seed, start, days) for site_id in site_ids]
        for table in _STATIC:
            rows = [r for sim in sims for r in sim.rows[table]]
            _copy_all(conn, table, rows)
            counts[table] = len(rows)

        loader = _Loader(conn)
        # The simulation holds the GIL; a shorter switch interval lets the loader thread hand
        # the server its next chunk sooner (measured: ~12% faster end to end). Restored below.
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, 0.0005))
        try:
            with tqdm(
                total=sites * days, desc="demo venue", unit="day", file=sys.stderr, disable=not show_progress
            ) as bar:
                for sim in sims:
                    bar.set_postfix_str(f"site {sim.site_id}")
                    for t in range(days):
                        sim.simulate_day(t)
                        if len(sim.rows["settlements"]) >= _CHUNK_ROWS or t == days - 1:
                            for table in _DAILY:
                                counts[table] += len(sim.rows[table])
                                loader.put(table, sim.rows[table])
                                sim.rows[table] = []
                        bar.update(1)
        except BaseException:
            loader.close(reraise=False)
            raise
        finally:
            sys.setswitchinterval(switch)
        loader.close()

        for sim in sims:
            levels = sim.levels()
            conn.execute(
                """UPDATE ods.members AS m SET level = v.level
                     FROM unnest(%s::bigint[], %s::text[]) AS v(member_id, level)
                    WHERE m.site_id = %s AND m.member_id = v.member_id""",
                ([mid for mid, _ in levels], [lv for _, lv in levels], sim.site_id),
            )
    return counts
