"""One demo site: its venue (areas, tables, assistants with rosters) and its members, with the
random streams and the rows the daily simulation appends to."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from zqyy_assets.core.business_date import DEFAULT_CUTOFF_HOURS, DEFAULT_TIMEZONE
from zqyy_assets.core.ods_tables import ODS_TABLES
from zqyy_assets.tools.demo_venue.holidays import day_factor
from zqyy_assets.tools.demo_venue.names_and_notes import GIVEN_NAMES_FEMALE, GIVEN_NAMES_MALE, SITE_NAMES, SURNAMES
from zqyy_assets.tools.demo_venue.venue_profile import (
    AREA_WEIGHTS,
    AREAS,
    ASSISTANT_LEVELS,
    CARD_LEVELS,
    CHURNING,
    DRINKS,
    LAST_START,
    LEVEL_RECHARGE,
    SEGMENT_WEIGHTS,
    SEGMENTS,
    START_HOURS,
    WEEKDAY_HOUR_WEIGHTS,
)

ID_BLOCK = 100_000_000  # ids are site-prefixed: site_id * ID_BLOCK + n


class Site:
    """A site's static rows and its simulation state: ``a_*`` lists are per assistant, ``m_*``
    arrays per member (by index); ``rows`` collects what is still to be loaded, per ODS table."""

    def __init__(
        self,
        site_id: int,
        seed: int,
        start: date,
        n_days: int,
        *,
        timezone: str = DEFAULT_TIMEZONE,
        cutoff_hours: int = DEFAULT_CUTOFF_HOURS,
    ):
        self.site_id = site_id
        # The venue's calendar: its local hours drive the simulation, its cut-off ends a business day.
        self.tz, self.cutoff_hours = ZoneInfo(timezone), cutoff_hours
        self.start, self.n_days = start, n_days
        # Independent streams per site: numpy for vectors, random.Random for per-visit draws.
        self.np = np.random.default_rng([seed, site_id])
        self.rnd = random.Random(f"zqyy-demo:{seed}:{site_id}")
        self.rows: dict[str, list[tuple]] = {t: [] for t in ODS_TABLES}
        self.seq: dict[str, int] = dict.fromkeys(ODS_TABLES, 0)
        self.scale = float(self.np.uniform(0.85, 1.2))
        self.snapshot_end = self.epoch(start + timedelta(days=n_days - 1), (24 + cutoff_hours) * 3600)
        self._layout()
        self._assistants()
        self._members()

    def epoch(self, d: date, seconds: int = 0) -> int:
        """Epoch seconds of ``seconds`` past the venue's local midnight of ``d``."""
        return int(datetime.combine(d, time(), self.tz).timestamp()) + seconds

    def next_id(self, table: str) -> int:
        self.seq[table] += 1
        return self.site_id * ID_BLOCK + self.seq[table]

    def _layout(self) -> None:
        name, city = SITE_NAMES[(self.site_id - 1) % len(SITE_NAMES)]
        if self.site_id > len(SITE_NAMES):
            name = f"{name}{(self.site_id - 1) // len(SITE_NAMES) + 1}号"
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
                tid = self.next_id("tables")
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
            level, fee, _w = rnd.choices(ASSISTANT_LEVELS, weights=[lv[2] for lv in ASSISTANT_LEVELS])[0]
            name = (
                rnd.choice(SURNAMES)
                + rnd.choice(GIVEN_NAMES_FEMALE)
                + (rnd.choice(GIVEN_NAMES_FEMALE) if rnd.random() < 0.6 else "")
            )
            # Rosters lean on the weekend: Friday-Sunday are the days most assistants work.
            k = rnd.choices((4, 5, 6), weights=(0.15, 0.6, 0.25))[0]
            days = frozenset(_weighted_sample(rnd, range(7), (0.8, 0.8, 0.9, 1, 1.5, 2, 1.8), k))
            hired = -rnd.randint(30, 1000) if rnd.random() < 0.8 else rnd.randint(0, max(0, self.n_days - 1))
            left = rnd.randint(hired + 60, hired + 400) if rnd.random() < 0.12 else 10**9
            aid = self.next_id("assistants")
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
        seg = g.choice(len(SEGMENTS), size=m, p=SEGMENT_WEIGHTS)
        lo = np.array([s[2][0] for s in SEGMENTS])[seg]
        hi = np.array([s[2][1] for s in SEGMENTS])[seg]
        self.m_reg_day = reg_day
        self.m_seg = seg
        self.m_rate = g.uniform(lo, hi)
        churn = np.full(m, np.inf)
        is_churn = seg == CHURNING
        initial = reg_day < 0
        churn[is_churn & initial] = g.uniform(-20, self.n_days + 30, size=int((is_churn & initial).sum()))
        late = is_churn & ~initial
        churn[late] = reg_day[late] + g.uniform(20, 120, size=int(late.sum()))
        self.m_churn = churn
        self.m_return = np.full(m, np.inf)
        self.m_weekend_only = g.random(m) < 0.1
        self.m_area = g.choice(len(AREAS), size=m, p=AREA_WEIGHTS)
        self.m_hour = g.choice(START_HOURS, size=m, p=WEEKDAY_HOUR_WEIGHTS / WEEKDAY_HOUR_WEIGHTS.sum())
        self.m_card = g.random(m) < np.array([s[3] for s in SEGMENTS])[seg]
        self.m_ids = [self.next_id("members") for _ in range(m)]
        self.m_fav_asst = [-1] * m
        self.m_drink = [rnd.choice(DRINKS) for _ in range(m)]
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
                ts = self.epoch(self.start - timedelta(days=days_before), rnd.randint(11 * 3600, 26 * 3600))
            else:
                hour = min(max(int(self.m_hour[i]) + rnd.randint(-1, 1), 10), 28)
                ts = self.epoch(self.day(int(reg_day[i])), min(hour * 3600 + rnd.randint(0, 3599), LAST_START))
            self.m_reg_ts.append(ts)
            female = self.m_female[i]
            name = rnd.choice(SURNAMES) + rnd.choice(GIVEN_NAMES_FEMALE if female else GIVEN_NAMES_MALE)
            if rnd.random() < 0.55:
                name += rnd.choice(GIVEN_NAMES_FEMALE if female else GIVEN_NAMES_MALE)
            phone = f"1{rnd.choice('3578')}{rnd.randint(0, 9)}****{rnd.randint(0, 9999):04d}"
            # The card level is written after the run (it follows this window's recharges).
            self.rows["members"].append(
                (self.site_id, self.m_ids[i], name, phone, "女" if female else "男", "普通", ts)
            )

    def day(self, t: int) -> date:
        return self.start + timedelta(days=t)

    def level(self, m: int) -> int:
        cum = self.m_cum[m]
        return max(i for i, need in enumerate(LEVEL_RECHARGE) if cum >= need)

    def levels(self) -> list[tuple[int, str]]:
        """(member_id, level) for members whose card level is no longer the default."""
        return [(self.m_ids[m], CARD_LEVELS[lv]) for m in range(len(self.m_ids)) if (lv := self.level(m)) > 0]


def _weighted_sample(rnd: random.Random, items: Iterable[int], weights: Sequence[float], k: int) -> list[int]:
    pool, w = list(items), list(weights)
    out = []
    for _ in range(k):
        i = rnd.choices(range(len(pool)), weights=w)[0]
        out.append(pool.pop(i))
        w.pop(i)
    return out
