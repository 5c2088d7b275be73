"""One business day of a demo site: who comes, when, to which table, with which assistant, and the bill."""

from __future__ import annotations

import numpy as np

from zqyy_assets.tools.demo_venue.follow_ups import recalls, recharge, write_note, write_task
from zqyy_assets.tools.demo_venue.holidays import day_factor, holiday
from zqyy_assets.tools.demo_venue.site import Site
from zqyy_assets.tools.demo_venue.venue_profile import (
    AREA_WEIGHTS,
    AREAS,
    CLOSE,
    GOODS_PRICES,
    GOODS_WEIGHTS,
    HALL_AREA_INDEXES,
    LAST_START,
    LEVEL_PAY_PCT,
    START_HOURS,
    WEEKDAY_HOUR_WEIGHTS,
    WEEKEND_HOUR_WEIGHTS,
)


def simulate_day(site: Site, t: int) -> None:
    """Day ``t`` of the window: recalls first, then every visit in order of arrival."""
    g = site.np
    d = site.day(t)
    wd = d.weekday()
    weekend = wd >= 5 or holiday(d) is not None
    origin = site.epoch(d)
    day_end = origin + (24 + site.cutoff_hours) * 3600 - 1
    factor = day_factor(d) * float(g.lognormal(0, 0.07))
    on_duty = [j for j in range(len(site.a_ids)) if wd in site.a_days[j] and site.a_hired[j] <= t < site.a_left[j]]

    recalls(site, t, origin, on_duty)

    # Who comes today: members by their own rhythm, new members on their registration day.
    registered = site.m_reg_day <= t
    rate = site.m_rate * factor
    rate = np.where(site.m_weekend_only, rate * (2.2 if wd >= 5 else 0.3), rate)
    fading = np.where(t >= site.m_churn, np.exp(-(t - site.m_churn) / 7.0), 1.0)
    rate = rate * np.where(t >= site.m_return, 0.6, fading)
    come = registered & (g.random(len(rate)) < np.minimum(rate, 0.85))
    come |= site.m_reg_day == t
    members = np.flatnonzero(come)
    walkins = int(g.poisson(85 * site.scale * factor))
    who = np.concatenate([members, np.full(walkins, -1)])
    n = len(who)
    if n == 0:
        return

    hour_w = WEEKEND_HOUR_WEIGHTS if weekend else WEEKDAY_HOUR_WEIGHTS
    hours = g.choice(START_HOURS, size=n, p=hour_w / hour_w.sum())
    is_member = who >= 0
    own_hour = is_member & (g.random(n) < 0.55)
    hours = np.where(own_hour, site.m_hour[np.maximum(who, 0)] + g.integers(-1, 2, size=n), hours)
    start = np.clip(hours * 3600 + g.integers(0, 3600, size=n), 10 * 3600, LAST_START)
    newcomers = np.flatnonzero(site.m_reg_day[np.maximum(who, 0)] == t)
    newcomers = newcomers[who[newcomers] >= 0]
    start[newcomers] = [site.m_reg_ts[int(who[k])] - origin for k in newcomers]
    areas = g.choice(len(AREAS), size=n, p=AREA_WEIGHTS)
    areas = np.where(is_member & (g.random(n) < 0.7), site.m_area[np.maximum(who, 0)], areas)
    means = np.array([a.mean_minutes for a in AREAS])[areas]
    minutes = np.clip(g.lognormal(np.log(means) - 0.1, 0.45), 15, 480).astype(int)
    order = np.argsort(start, kind="stable")

    table_free = [0] * len(site.table_ids)
    for k in order.tolist():
        m = int(who[k])
        _visit(site, t, origin, day_end, m, int(areas[k]), origin + int(start[k]), int(minutes[k]), on_duty, table_free)


def _visit(
    site: Site,
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
    """One party: a table (or a wait for one), assistants, goods, the bill and its payment, then
    the note or follow-up task it may prompt."""
    rnd = site.rnd
    table = _free_table(site, area, start, table_free)
    if table is None:
        table = min(site.area_tables[area], key=table_free.__getitem__)
        start = table_free[table] + rnd.randint(60, 600)  # waits for the next free table
        if start > origin + LAST_START:
            table = None
    if table is not None:
        minutes = min(minutes, (origin + CLOSE - start) // 60)
        if minutes < 10:
            table = None
    if table is None:  # gave up: the table never opened
        return
    area = site.table_area[table]
    end = start + minutes * 60
    table_free[table] = end + 300  # cleaning the table
    settled = min(end + rnd.randint(20, 300), day_end)
    sid = site.next_id("settlements")
    member_id = site.m_ids[m] if m >= 0 else None
    first_visit = m >= 0 and not site.m_seen[m] and site.m_reg_day[m] == t
    if m >= 0:
        site.m_seen[m] = True

    # Assistants: regulars ask for the one they know.
    spec = AREAS[area]
    assistant_fee = 0
    served_by: list[int] = []
    fav = site.m_fav_asst[m] if m >= 0 else -1
    if on_duty and rnd.random() < spec.assistant_share * (1.6 if fav >= 0 else 1.0):
        free = [j for j in on_duty if site.a_free[j] <= start]
        if free:
            served_by.append(fav if fav in free and rnd.random() < 0.7 else rnd.choice(free))
            if area in (3, 6) and len(free) > 1 and rnd.random() < 0.12:
                served_by.append(rnd.choice([j for j in free if j != served_by[0]]))
    for j in served_by:
        svc = minutes if minutes <= 60 else max(60, int(minutes * rnd.uniform(0.55, 1.0)))
        delay = rnd.randint(0, min(10, minutes - svc))
        s_start = start + delay * 60
        fee = svc * site.a_fee[j]
        assistant_fee += fee
        site.a_free[j] = s_start + svc * 60 + 300
        site.rows["assistant_services"].append(
            (
                site.site_id,
                site.next_id("assistant_services"),
                sid,
                site.a_ids[j],
                member_id,
                s_start,
                s_start + svc * 60,
                svc,
                fee,
            )
        )
        if m >= 0 and fav < 0 and rnd.random() < 0.5:
            site.m_fav_asst[m] = fav = j

    goods = 0
    if rnd.random() < spec.goods_prob:
        items = 1
        q = (spec.goods_items - 1) / spec.goods_items
        while rnd.random() < q and items < 12:
            items += 1
        goods = sum(rnd.choices(GOODS_PRICES, weights=GOODS_WEIGHTS, k=items))

    table_fee = minutes * site.table_price[table]
    if m >= 0:
        level = site.level(m)
        discount = table_fee - (table_fee * LEVEL_PAY_PCT[level] + 50) // 100
    elif rnd.random() < 0.1:  # group-buying coupon
        discount = min(rnd.choice((10_00, 20_00, 30_00)), table_fee)
    else:
        discount = 0
    total = table_fee + assistant_fee + goods - discount

    if first_visit and rnd.random() < 0.35:
        recharge(site, m, start + rnd.randint(60, 300))
    pay = None
    if m >= 0 and site.m_card[m]:
        if site.m_balance[m] < total and rnd.random() < 0.6:
            recharge(site, m, settled - rnd.randint(5, 60))
        if site.m_balance[m] >= total and rnd.random() < 0.92:
            pay = "会员卡"
            site.m_balance[m] -= total
    if pay is None:
        pay = rnd.choices(("微信", "支付宝", "现金"), weights=(65, 27, 8))[0]
        if pay == "现金":  # cash is rounded down to the yuan
            discount += total % 100
            total -= total % 100
    site.rows["settlements"].append(
        (
            site.site_id,
            sid,
            member_id,
            spec.code,
            site.table_ids[table],
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
    site.m_last[m] = t
    writer = served_by[0] if served_by else -1
    fading = site.m_churn[m] - 21 <= t <= site.m_churn[m] + 30 and site.m_return[m] > t
    if writer >= 0 and rnd.random() < (0.3 if fading else 0.12):
        write_note(site, m, writer, min(settled + rnd.randint(120, 3600), day_end), fading)
    elif rnd.random() < 0.005:  # the front desk writes a few too
        write_note(site, m, -1, min(settled + rnd.randint(60, 1800), day_end), False)
    if (first_visit and rnd.random() < 0.5) or (total >= 600_00 and rnd.random() < 0.25):
        asst = writer if writer >= 0 else fav if fav >= 0 else rnd.choice(on_duty) if on_duty else -1
        if asst >= 0:
            write_task(site, m, asst, "回访", min(settled + rnd.randint(300, 5400), day_end), 3)


def _free_table(site: Site, area: int, start: int, table_free: list[int]) -> int | None:
    free = [i for i in site.area_tables[area] if table_free[i] <= start]
    if not free and area in HALL_AREA_INDEXES:  # the hall is one room: any free table in it will do
        free = [i for a in HALL_AREA_INDEXES for i in site.area_tables[a] if table_free[i] <= start]
    return free[site.rnd.randrange(len(free))] if free else None
