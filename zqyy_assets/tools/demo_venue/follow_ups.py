"""What a visit leaves behind besides the bill: stored-value recharges, assistants' notes, and
回访 / 召回 tasks with their state at the end of the generated window."""

from __future__ import annotations

import math

import numpy as np

from zqyy_assets.tools.demo_venue.names_and_notes import NOTE_CATEGORIES, NOTE_FRAGMENTS, NOTE_WEIGHTS, time_slot
from zqyy_assets.tools.demo_venue.site import Site
from zqyy_assets.tools.demo_venue.venue_profile import AREAS, LOYAL, RECHARGE_OFFERS


def recharge(site: Site, m: int, at: int) -> None:
    rnd = site.rnd
    big = site.m_seg[m] == LOYAL
    amount, bonus = rnd.choices(RECHARGE_OFFERS, weights=(20, 35, 25, 12, 8) if big else (45, 30, 15, 6, 4))[0]
    site.m_cum[m] += amount
    site.m_balance[m] += amount + bonus
    site.m_card[m] = True
    pay = rnd.choices(("微信", "支付宝", "现金"), weights=(60, 30, 10))[0]
    site.rows["recharges"].append((site.site_id, site.next_id("recharges"), site.m_ids[m], amount, bonus, pay, at))


def write_note(site: Site, m: int, writer: int, at: int, fading: bool) -> None:
    rnd = site.rnd
    area = AREAS[int(site.m_area[m])]
    cats = ["churn"] if fading and rnd.random() < 0.7 else []
    while len(cats) < (1 if rnd.random() < 0.6 else 2):
        c = rnd.choices(NOTE_CATEGORIES, weights=NOTE_WEIGHTS)[0]
        if c == "area" and area.code in ("snooker", "mahjong", "ktv"):
            c = area.code
        if c == "assistant" and writer < 0:
            c = "personality"
        if c not in cats:
            cats.append(c)
    month, day = site.m_birthday[m]
    fav = site.m_fav_asst[m]
    fields = {
        "area": area.name,
        "drink": site.m_drink[m],
        "slot": time_slot(int(site.m_hour[m])),
        "month": month,
        "day": day,
        "n": rnd.randint(2, 5),
        "amount": rnd.choice((1000, 2000, 3000)),
        "assistant": site.a_names[fav if fav >= 0 else max(writer, 0)],
    }
    text = rnd.choice("，；").join(rnd.choice(NOTE_FRAGMENTS[c]).format(**fields) for c in cats)
    aid = site.a_ids[writer] if writer >= 0 else None
    site.rows["notes"].append((site.site_id, site.next_id("notes"), site.m_ids[m], aid, text, at))


def write_task(site: Site, m: int, asst: int, kind: str, assigned: int, due_days: int) -> int | None:
    """Write a task with its state as of the end of the generated window; returns completion time."""
    rnd = site.rnd
    due = assigned + due_days * 86400
    r = rnd.random()
    done_at: int | None = None
    status = "assigned"
    if r < 0.75:
        done_at = assigned + rnd.randint(3600, due_days * 86400)
        status = "done"
    elif r < 0.83:
        status = "cancelled"
    if done_at is not None and done_at > site.snapshot_end:
        done_at, status = None, "assigned"
    elif status == "cancelled" and assigned + 86400 > site.snapshot_end:
        status = "assigned"
    site.rows["tasks"].append(
        (site.site_id, site.next_id("tasks"), site.m_ids[m], site.a_ids[asst], kind, status, assigned, due, done_at)
    )
    return done_at


def recalls(site: Site, t: int, origin: int, on_duty: list[int]) -> None:
    """召回: regulars (by their usual rhythm) absent three weeks, at most a few a day."""
    if not on_duty:
        return
    rnd = site.rnd
    eligible = np.flatnonzero(
        (site.m_reg_day < t) & (site.m_rate >= 0.07) & (t - site.m_last >= 21) & (t - site.m_last_recall >= 45)
    )
    if eligible.size == 0:
        return
    chosen = site.np.permutation(eligible)[: int(site.np.integers(1, 5))]
    for m in sorted(chosen.tolist()):
        fav = site.m_fav_asst[m]
        asst = fav if fav in on_duty else rnd.choice(on_duty)
        site.m_last_recall[m] = t
        done = write_task(site, m, asst, "召回", origin + 14 * 3600 + rnd.randint(0, 3 * 3600), 7)
        # Some of those called back really return, at a calmer pace than before.
        if done is not None and t >= site.m_churn[m] and rnd.random() < 0.3:
            site.m_return[m] = t + math.ceil((done - origin) / 86400)
