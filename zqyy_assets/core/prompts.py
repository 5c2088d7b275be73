"""Prompt builders: the JSON of real figures each app receives, built from DWS/ODS.

A prompt is data, not prose: the app's system prompt (Chinese, versioned in
``zqyy_assets/prompts/``) tells the model what to do with it. Keys are English (Chinese keys
made the old App2 prompts long and slow), labels and free text are Chinese. The shapes follow
what ``zqyy_assets.core.llm.offline`` reads, so the offline analyst answers from the same JSON.

Each builder has a ``version``; it goes into the memoization hash and the cache row, so a change
of shape re-asks every target once. Builders are pure reads: the same data gives byte-identical
JSON (ordered lists, no clock), which is what makes an unchanged input a cache hit.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from zqyy_assets.core import cache
from zqyy_assets.core.business_date import DEFAULT_TIMEZONE
from zqyy_assets.core.partition_keys import AssistantMemberKey, MemberKey
from zqyy_assets.core.vocabulary import AREAS, HALL_AREAS, TIME_DIMENSIONS

# One version per builder; bump it whenever the builder's JSON changes shape or meaning.
PROMPT_VERSIONS: dict[str, str] = {
    "app2_finance": "app2-p1",
    "app2a_finance_area": "app2-p1",  # one builder serves both finance apps
    "app3_clue": "app3-p1",
    "app4_analysis": "app4-p1",
    "app5_tactics": "app5-p1",
    "app6_note": "app6-p1",
    "app7_customer": "app7-p1",
    "app8_consolidation": "app8-p1",
}

TIME_DIMENSION_LABELS = {
    "this_month": "本月",
    "last_month": "上月",
    "this_week": "本周",
    "last_week": "上周",
    "this_quarter": "本季度",
    "last_quarter": "上季度",
    "last_3_months": "近三个月",
    "last_6_months": "近半年",
}
AREA_LABELS = {
    "all": "全店",
    "hall": "大厅",
    "hallA": "大厅A区",
    "hallB": "大厅B区",
    "hallC": "大厅C区",
    "vip": "VIP包厢",
    "snooker": "斯诺克区",
    "mahjong": "麻将房",
    "ktv": "KTV",
}
TIME_SLOT_LABELS = {"morning": "上午", "afternoon": "下午", "evening": "晚上", "late_night": "深夜"}
TREND_LABELS = {"up": "上升", "down": "下降", "flat": "持平", "new": "新客", "inactive": "不活跃"}
WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")

RECENT_SETTLEMENTS = 15
RECENT_NOTES = 10
RECENT_SERVICES = 10
RECENT_TASKS = 5


class NothingToAsk(Exception):
    """The target has no data the app could analyse; the asset records it as skipped, no call."""


# ---------------------------------------------------------------------------------- helpers


def money(value: Decimal | float | int | None) -> float:
    return float(round(Decimal(value or 0), 2))


def pct_change(current: float, previous: float) -> float | None:
    """Percent change, one decimal; None when the comparison is zero (no base to compare to)."""
    if not previous:
        return None
    return round((current - previous) / abs(previous) * 100, 1)


def _local(ts: datetime | None, tz: str) -> str | None:
    return ts.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M") if ts else None


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


# ----------------------------------------------------------------------------- time windows


@dataclass(frozen=True)
class Window:
    start: date
    end: date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def contains(self, d: date) -> bool:
        return self.start <= d <= self.end


@dataclass(frozen=True)
class PeriodPair:
    time_dimension: str
    current: Window
    comparison: Window
    to_date: bool  # the current window runs up to the as-of date (not a closed period)


def add_months(d: date, months: int) -> date:
    """The same day ``months`` later (or earlier), clamped to the target month's last day."""
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _month_start(d: date) -> date:
    return d.replace(day=1)


def _quarter_start(d: date) -> date:
    return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


def period_pair(time_dimension: str, as_of: date) -> PeriodPair:
    """The current window for a time dimension as of a business date, and its comparison.

    To-date windows (this week/month/quarter, last 3/6 months) compare with the same span one
    period earlier (1 March..15 March with 1 February..15 February, the day clamped to the
    month's end); closed periods (last week/month/quarter) compare with the period before.
    """
    if time_dimension == "this_week":
        start = as_of - timedelta(days=as_of.weekday())
        return PeriodPair(
            time_dimension, Window(start, as_of), Window(start - timedelta(7), as_of - timedelta(7)), True
        )
    if time_dimension == "last_week":
        start = as_of - timedelta(days=as_of.weekday() + 7)
        return PeriodPair(
            time_dimension,
            Window(start, start + timedelta(6)),
            Window(start - timedelta(7), start - timedelta(1)),
            False,
        )
    if time_dimension in ("this_month", "this_quarter", "last_3_months", "last_6_months"):
        start, months = {
            "this_month": (_month_start(as_of), 1),
            "this_quarter": (_quarter_start(as_of), 3),
            "last_3_months": (add_months(_month_start(as_of), -2), 3),
            "last_6_months": (add_months(_month_start(as_of), -5), 6),
        }[time_dimension]
        return PeriodPair(
            time_dimension,
            Window(start, as_of),
            Window(add_months(start, -months), add_months(as_of, -months)),
            True,
        )
    if time_dimension in ("last_month", "last_quarter"):
        months = 1 if time_dimension == "last_month" else 3
        this_start = _month_start(as_of) if months == 1 else _quarter_start(as_of)
        start = add_months(this_start, -months)
        before = add_months(start, -months)
        return PeriodPair(
            time_dimension, Window(start, this_start - timedelta(1)), Window(before, start - timedelta(1)), False
        )
    raise ValueError(f"unknown time dimension {time_dimension!r}; known: {', '.join(TIME_DIMENSIONS)}")


def earliest_needed(as_of: date) -> date:
    """The first business date any of the eight comparison windows reaches back to."""
    return min(period_pair(td, as_of).comparison.start for td in TIME_DIMENSIONS)


# ------------------------------------------------------------------------------ App2 / App2a

_SUMMED = ("revenue", "table_fee", "assistant_fee", "goods_amount", "discount", "member_revenue", "recharge_amount")
_COUNTED = ("orders", "member_orders", "recharge_count", "table_minutes")


@dataclass(frozen=True)
class FinanceDay:
    biz_date: date
    area_code: str
    figures: dict[str, Decimal | int]


@dataclass(frozen=True)
class SiteFinance:
    """One site's daily finance rows over the span every app2 window needs, loaded once."""

    site_id: int
    site_name: str
    as_of: date
    days: tuple[FinanceDay, ...]
    area_names: dict[str, str]  # the site's own names for its physical areas (ods.areas)


def site_as_of(conn: psycopg.Connection, site_id: int) -> date | None:
    """The site's latest business date with finance figures (DWS's own 'as of' rule)."""
    row = conn.execute(
        "SELECT max(biz_date) AS d FROM dws.finance_area_daily WHERE site_id = %s AND area_code = 'all'", (site_id,)
    ).fetchone()
    return row["d"] if row else None


def load_site_finance(conn: psycopg.Connection, site_id: int, as_of: date | None = None) -> SiteFinance | None:
    """The site's finance days for all 72 prompts; None when the site has no DWS figures yet."""
    as_of = as_of or site_as_of(conn, site_id)
    if as_of is None:
        return None
    site = conn.execute("SELECT name FROM ods.sites WHERE site_id = %s", (site_id,)).fetchone()
    rows = conn.execute(
        f"""SELECT biz_date, area_code, {", ".join(_SUMMED + _COUNTED)}
            FROM dws.finance_area_daily
            WHERE site_id = %s AND biz_date BETWEEN %s AND %s
            ORDER BY biz_date, area_code""",
        (site_id, earliest_needed(as_of), as_of),
    ).fetchall()
    names = conn.execute("SELECT area_code, name FROM ods.areas WHERE site_id = %s", (site_id,)).fetchall()
    return SiteFinance(
        site_id=site_id,
        site_name=site["name"] if site else "",
        as_of=as_of,
        days=tuple(FinanceDay(r["biz_date"], r["area_code"], {k: r[k] for k in _SUMMED + _COUNTED}) for r in rows),
        area_names={r["area_code"]: r["name"] for r in names},
    )


def _area_codes(area: str) -> tuple[str, ...]:
    if area == "hall":
        return HALL_AREAS
    if area not in AREAS:
        raise ValueError(f"unknown area {area!r}")
    return (area,)


def _metrics(days: Iterable[FinanceDay], window: Window) -> dict[str, float | int]:
    sums: dict[str, Decimal] = {k: Decimal(0) for k in _SUMMED}
    counts: dict[str, int] = {k: 0 for k in _COUNTED}
    active: set[date] = set()
    for day in days:
        if not window.contains(day.biz_date):
            continue
        for k in _SUMMED:
            sums[k] += day.figures[k]
        for k in _COUNTED:
            counts[k] += int(day.figures[k])
        if day.figures["orders"]:
            active.add(day.biz_date)
    revenue = money(sums["revenue"])
    out: dict[str, float | int] = {k: money(v) for k, v in sums.items()}
    out.update(counts)
    out["table_hours"] = round(counts["table_minutes"] / 60, 2)
    out["member_share"] = round(money(sums["member_revenue"]) / revenue, 4) if revenue else 0.0
    out["avg_order_value"] = round(revenue / counts["orders"], 2) if counts["orders"] else 0.0
    out["daily_avg_revenue"] = round(revenue / window.days, 2)
    out["active_days"] = len(active)
    return out


def _changes(current: dict, previous: dict) -> dict[str, float | None]:
    keys = (
        "revenue",
        "table_fee",
        "assistant_fee",
        "goods_amount",
        "discount",
        "orders",
        "table_hours",
        "member_revenue",
        "avg_order_value",
        "recharge_amount",
    )
    return {k: pct_change(current[k], previous[k]) for k in keys if k in current}


def build_app2_prompt(finance: SiteFinance, time_dimension: str, area: str) -> dict[str, Any]:
    """Finance figures for one site, time dimension and area, with their comparison period.

    'all' reads the site's 'all' rows (the only ones with recharges); 'hall' sums hallA..C; any
    other area reads its own rows. 'all' and 'hall' also get the split by area and the movers.
    """
    pair = period_pair(time_dimension, finance.as_of)
    codes = ("all",) if area == "all" else _area_codes(area)
    selected = [d for d in finance.days if d.area_code in codes]
    current, previous = _metrics(selected, pair.current), _metrics(selected, pair.comparison)
    if area != "all":  # recharges belong to no area
        for m in (current, previous):
            m.pop("recharge_amount"), m.pop("recharge_count")

    prompt: dict[str, Any] = {
        "site": {"site_id": finance.site_id, "site_name": finance.site_name},
        "as_of_date": finance.as_of.isoformat(),
        "time_dimension": time_dimension,
        "time_dimension_label": TIME_DIMENSION_LABELS[time_dimension],
        "area": area,
        "area_label": _area_label(finance, area),
        "period": {
            "start": pair.current.start.isoformat(),
            "end": pair.current.end.isoformat(),
            "days": pair.current.days,
            "to_date": pair.to_date,
            "metrics": current,
        },
        "comparison": {
            "start": pair.comparison.start.isoformat(),
            "end": pair.comparison.end.isoformat(),
            "days": pair.comparison.days,
            "metrics": previous,
        },
        "change_pct": _changes(current, previous),
        "has_data": current["orders"] > 0,
    }
    parts = _parts(area)
    if parts:
        breakdown = []
        for code in parts:
            rows = [d for d in finance.days if d.area_code in _area_codes(code)]
            cur = _metrics(rows, pair.current)["revenue"]
            prev = _metrics(rows, pair.comparison)["revenue"]
            if not cur and not prev:
                continue  # an area the site lacks, or idle in both periods
            breakdown.append(
                {
                    "area": code,
                    "area_label": _area_label(finance, code),
                    "current": cur,
                    "previous": prev,
                    "share": round(cur / current["revenue"], 4) if current["revenue"] else 0.0,
                    "change_pct": pct_change(cur, prev),
                }
            )
        prompt["area_breakdown"] = breakdown
    prompt["top_movers"] = _top_movers(finance, area, pair, current, previous)
    prompt["best_days"] = _best_days(selected, pair.current)
    return prompt


def _area_label(finance: SiteFinance, area: str) -> str:
    return finance.area_names.get(area) or AREA_LABELS[area]


def _parts(area: str) -> tuple[str, ...]:
    if area == "all":
        return ("hallA", "hallB", "hallC", "vip", "snooker", "mahjong", "ktv")
    if area == "hall":
        return HALL_AREAS
    return ()


_MOVER_METRICS = {
    "revenue": "营业额",
    "table_fee": "台费",
    "assistant_fee": "助教费",
    "goods_amount": "商品及酒水",
    "discount": "优惠金额",
}


def _top_movers(finance: SiteFinance, area: str, pair: PeriodPair, current: dict, previous: dict) -> list[dict]:
    """The five biggest absolute changes: by sub-area and metric for 'all'/'hall', by metric otherwise."""
    candidates = []
    if _parts(area):
        for code in _parts(area):
            rows = [d for d in finance.days if d.area_code == code]
            cur, prev = _metrics(rows, pair.current), _metrics(rows, pair.comparison)
            for metric, label in _MOVER_METRICS.items():
                candidates.append((code, metric, f"{_area_label(finance, code)}{label}", cur[metric], prev[metric]))
    else:
        for metric, label in _MOVER_METRICS.items():
            if metric != "revenue":
                candidates.append(
                    (area, metric, f"{_area_label(finance, area)}{label}", current[metric], previous[metric])
                )
    movers = [
        {
            "name": name,
            "metric": metric,
            "area": code,
            "current": cur,
            "previous": prev,
            "change": round(cur - prev, 2),
            "change_pct": pct_change(cur, prev),
        }
        for code, metric, name, cur, prev in candidates
        if cur or prev
    ]
    movers.sort(key=lambda m: (-abs(m["change"]), m["name"]))
    return movers[:5]


def _best_days(days: list[FinanceDay], window: Window) -> list[dict]:
    per_day: dict[date, list[Decimal | int]] = {}
    for d in days:
        if window.contains(d.biz_date):
            acc = per_day.setdefault(d.biz_date, [Decimal(0), 0])
            acc[0] += d.figures["revenue"]
            acc[1] += int(d.figures["orders"])
    ranked = sorted(per_day.items(), key=lambda kv: (-kv[1][0], kv[0]))[:3]
    return [
        {"date": d.isoformat(), "weekday": WEEKDAYS[d.weekday()], "revenue": money(v[0]), "orders": v[1]}
        for d, v in ranked
    ]


# ----------------------------------------------------------------------------- member figures


def _member_core(conn: psycopg.Connection, site_id: int, member_id: int) -> dict[str, Any]:
    """Member basics and ``dws.member_profile`` under the names the apps read; raises when unknown."""
    row = conn.execute(
        """SELECT m.name, m.gender, m.level, m.registered_at, p.*, a.name AS fav_assistant_name
           FROM ods.members m
           LEFT JOIN dws.member_profile p USING (site_id, member_id)
           LEFT JOIN ods.assistants a ON a.site_id = m.site_id AND a.assistant_id = p.favourite_assistant_id
           WHERE m.site_id = %s AND m.member_id = %s""",
        (site_id, member_id),
    ).fetchone()
    if row is None:
        raise NothingToAsk(f"member {member_id} does not exist at site {site_id}")
    return row


def _member_block(row: dict[str, Any], member_id: int, tz: str) -> dict[str, Any]:
    return {
        "member_id": member_id,
        "member_name": row["name"],
        "gender": row["gender"] or None,
        "member_level": row["level"],
        "registered_on": _local(row["registered_at"], tz)[:10] if row["registered_at"] else None,
    }


def _profile_block(row: dict[str, Any], tz: str) -> dict[str, Any] | None:
    if row.get("as_of_date") is None:
        return None
    return {
        "as_of_date": _iso(row["as_of_date"]),
        "first_visit_at": _local(row["first_visit_at"], tz),
        "last_visit_at": _local(row["last_visit_at"], tz),
        "recency_days": row["recency_days"],
        "visits_30d": row["visits_30d"],
        "visits_90d": row["visits_90d"],
        "visits_180d": row["visits_180d"],
        "spend_30d": money(row["spend_30d"]),
        "spend_prev_30d": money(row["spend_prev_30d"]),
        "spend_90d": money(row["spend_90d"]),
        "spend_180d": money(row["spend_180d"]),
        "spend_trend": row["spend_trend"],
        "spend_trend_label": TREND_LABELS.get(row["spend_trend"], row["spend_trend"]),
        "recharge_180d": money(row["recharge_180d"]),
        "favourite_area": row["favourite_area"],
        "favourite_area_label": AREA_LABELS.get(row["favourite_area"]) if row["favourite_area"] else None,
        "favourite_time_slot": TIME_SLOT_LABELS.get(row["favourite_time_slot"]) if row["favourite_time_slot"] else None,
        "favourite_assistant_id": row["favourite_assistant_id"],
        "favourite_assistant_name": row["fav_assistant_name"],
    }


def _recent_settlements(conn: psycopg.Connection, site_id: int, member_id: int, tz: str) -> list[dict]:
    rows = conn.execute(
        """SELECT s.settlement_id, s.area_code, s.settled_at, s.table_minutes, s.table_fee, s.assistant_fee,
                  s.goods_amount, s.discount, s.total, s.pay_method,
                  COALESCE((SELECT string_agg(DISTINCT a.name, '、' ORDER BY a.name)
                            FROM ods.assistant_services x
                            JOIN ods.assistants a USING (site_id, assistant_id)
                            WHERE x.site_id = s.site_id AND x.settlement_id = s.settlement_id), '') AS assistants
           FROM ods.settlements s
           WHERE s.site_id = %s AND s.member_id = %s
           ORDER BY s.settled_at DESC, s.settlement_id DESC
           LIMIT %s""",
        (site_id, member_id, RECENT_SETTLEMENTS),
    ).fetchall()
    return [
        {
            "settled_at": _local(r["settled_at"], tz),
            "area": r["area_code"],
            "area_label": AREA_LABELS.get(r["area_code"], r["area_code"]),
            "table_minutes": r["table_minutes"],
            "table_fee": money(r["table_fee"]),
            "assistant_fee": money(r["assistant_fee"]),
            "goods_amount": money(r["goods_amount"]),
            "discount": money(r["discount"]),
            "total": money(r["total"]),
            "pay_method": r["pay_method"],
            "assistants": r["assistants"] or None,
        }
        for r in rows
    ]


def _recent_recharges(conn: psycopg.Connection, site_id: int, member_id: int, tz: str) -> list[dict]:
    rows = conn.execute(
        """SELECT amount, bonus, pay_method, recharged_at FROM ods.recharges
           WHERE site_id = %s AND member_id = %s ORDER BY recharged_at DESC, recharge_id DESC LIMIT 5""",
        (site_id, member_id),
    ).fetchall()
    return [
        {
            "recharged_at": _local(r["recharged_at"], tz),
            "amount": money(r["amount"]),
            "bonus": money(r["bonus"]),
            "pay_method": r["pay_method"],
        }
        for r in rows
    ]


def _member_assistants(conn: psycopg.Connection, site_id: int, member_id: int, tz: str) -> list[dict]:
    rows = conn.execute(
        """SELECT am.assistant_id, a.name, am.services, am.minutes, am.fees, am.last_service_at
           FROM dws.assistant_member am JOIN ods.assistants a USING (site_id, assistant_id)
           WHERE am.site_id = %s AND am.member_id = %s
           ORDER BY am.services DESC, am.assistant_id LIMIT 3""",
        (site_id, member_id),
    ).fetchall()
    return [
        {
            "assistant_id": r["assistant_id"],
            "assistant_name": r["name"],
            "service_count": r["services"],
            "service_minutes": int(r["minutes"]),
            "service_fees": money(r["fees"]),
            "last_service_at": _local(r["last_service_at"], tz),
        }
        for r in rows
    ]


def _latest_clues(
    conn: psycopg.Connection, site_id: int, app_name: str, target_id: str, tz: str
) -> tuple[list, str | None]:
    row = cache.latest_valid(conn, site_id, app_name, target_id)
    if row is None:
        return [], None
    clues = row.result_json.get("clues") or []
    keep = ("category", "emoji", "summary", "detail", "providers")
    return [{k: c[k] for k in keep if k in c} for c in clues if isinstance(c, dict)], _local(row.created_at, tz)


def build_app3_prompt(conn: psycopg.Connection, key: MemberKey, *, tz: str = DEFAULT_TIMEZONE) -> dict[str, Any]:
    """App3 (consumption clues): the member's profile and recent visits, recharges, assistants."""
    core = _member_core(conn, key.site_id, key.member_id)
    settlements = _recent_settlements(conn, key.site_id, key.member_id, tz)
    if not settlements:
        raise NothingToAsk("the member has no settlements yet")
    return {
        "site_id": key.site_id,
        "member": _member_block(core, key.member_id, tz),
        "profile": _profile_block(core, tz),
        "recent_settlements": settlements,
        "recent_recharges": _recent_recharges(conn, key.site_id, key.member_id, tz),
        "assistants": _member_assistants(conn, key.site_id, key.member_id, tz),
    }


def build_app7_prompt(conn: psycopg.Connection, key: MemberKey, *, tz: str = DEFAULT_TIMEZONE) -> dict[str, Any]:
    """App7 (customer analysis): App3's figures plus the consolidated clues (App8, else App3)."""
    prompt = build_app3_prompt(conn, key, tz=tz)
    clues, generated_at = _latest_clues(conn, key.site_id, "app8_consolidation", key.target_id, tz)
    source = "app8_consolidation"
    if not clues:
        clues, generated_at = _latest_clues(conn, key.site_id, "app3_clue", key.target_id, tz)
        source = "app3_clue"
    prompt["clues"] = clues
    prompt["clues_source"] = source if clues else None
    prompt["clues_generated_at"] = generated_at
    return prompt


def build_app6_prompt(conn: psycopg.Connection, key: MemberKey, *, tz: str = DEFAULT_TIMEZONE) -> dict[str, Any]:
    """App6 (note analysis): the newest note about the member, earlier notes as context."""
    core = _member_core(conn, key.site_id, key.member_id)
    notes = conn.execute(
        """SELECT n.note_id, n.content, n.created_at, n.assistant_id, a.name AS author
           FROM ods.notes n LEFT JOIN ods.assistants a USING (site_id, assistant_id)
           WHERE n.site_id = %s AND n.member_id = %s
           ORDER BY n.created_at DESC, n.note_id DESC LIMIT %s""",
        (key.site_id, key.member_id, RECENT_NOTES),
    ).fetchall()
    if not notes:
        raise NothingToAsk("the member has no notes")
    latest, earlier = notes[0], notes[1:]
    profile = _profile_block(core, tz)
    return {
        "site_id": key.site_id,
        "member": _member_block(core, key.member_id, tz),
        "note_id": latest["note_id"],
        "note_content": latest["content"],
        "noted_by_name": latest["author"] or "前台",
        "noted_at": _local(latest["created_at"], tz),
        "earlier_notes": [
            {"content": n["content"], "noted_by_name": n["author"] or "前台", "noted_at": _local(n["created_at"], tz)}
            for n in earlier
        ],
        "member_summary": None
        if profile is None
        else {
            k: profile[k]
            for k in (
                "recency_days",
                "visits_90d",
                "spend_90d",
                "spend_trend_label",
                "favourite_area_label",
                "favourite_time_slot",
            )
        },
    }


def build_app8_prompt(conn: psycopg.Connection, key: MemberKey, *, tz: str = DEFAULT_TIMEZONE) -> dict[str, Any]:
    """App8 (clue consolidation): the latest App3 and App6 clues, and the manual clues to respect."""
    core = _member_core(conn, key.site_id, key.member_id)
    app3, app3_at = _latest_clues(conn, key.site_id, "app3_clue", key.target_id, tz)
    app6, app6_at = _latest_clues(conn, key.site_id, "app6_note", key.target_id, tz)
    if not app3 and not app6:
        raise NothingToAsk("neither App3 nor App6 has clues for the member")
    manual = conn.execute(
        """SELECT category, summary, detail, recorded_by_name FROM biz.member_retention_clue
           WHERE site_id = %s AND member_id = %s AND source = 'manual'
           ORDER BY created_at, id""",
        (key.site_id, key.member_id),
    ).fetchall()
    return {
        "site_id": key.site_id,
        "member": _member_block(core, key.member_id, tz),
        "app3_clues": app3,
        "app3_generated_at": app3_at,
        "app6_clues": app6,
        "app6_generated_at": app6_at,
        "manual_clues": [dict(r) for r in manual],
    }


# ------------------------------------------------------------------------ assistant x member


def _assistant(conn: psycopg.Connection, site_id: int, assistant_id: int) -> dict[str, Any]:
    row = conn.execute(
        "SELECT name, level, hired_on, is_active FROM ods.assistants WHERE site_id = %s AND assistant_id = %s",
        (site_id, assistant_id),
    ).fetchone()
    if row is None:
        raise NothingToAsk(f"assistant {assistant_id} does not exist at site {site_id}")
    return {
        "assistant_id": assistant_id,
        "assistant_name": row["name"],
        "assistant_level": row["level"],
        "hired_on": _iso(row["hired_on"]),
        "is_active": row["is_active"],
    }


def _relation(conn: psycopg.Connection, key: AssistantMemberKey, as_of: date | None, tz: str) -> dict[str, Any]:
    row = conn.execute(
        """SELECT services, minutes, fees, first_service_at, last_service_at FROM dws.assistant_member
           WHERE site_id = %s AND assistant_id = %s AND member_id = %s""",
        (key.site_id, key.assistant_id, key.member_id),
    ).fetchone()
    if row is None:
        return {
            "services": 0,
            "minutes": 0,
            "fees": 0.0,
            "first_service_at": None,
            "last_service_at": None,
            "days_since_last_service": None,
        }
    last_local = row["last_service_at"].astimezone(ZoneInfo(tz)).date()
    return {
        "services": row["services"],
        "minutes": int(row["minutes"]),
        "fees": money(row["fees"]),
        "first_service_at": _local(row["first_service_at"], tz),
        "last_service_at": _local(row["last_service_at"], tz),
        "days_since_last_service": (as_of - last_local).days if as_of else None,
    }


def _pair_tasks(conn: psycopg.Connection, key: AssistantMemberKey, tz: str) -> list[dict]:
    rows = conn.execute(
        """SELECT task_type, status, assigned_at, due_at, completed_at FROM ods.tasks
           WHERE site_id = %s AND assistant_id = %s AND member_id = %s
           ORDER BY assigned_at DESC, task_id DESC LIMIT %s""",
        (key.site_id, key.assistant_id, key.member_id, RECENT_TASKS),
    ).fetchall()
    return [
        {
            "task_type": r["task_type"],
            "status": r["status"],
            "assigned_at": _local(r["assigned_at"], tz),
            "due_at": _local(r["due_at"], tz),
            "completed_at": _local(r["completed_at"], tz),
        }
        for r in rows
    ]


def _pair_notes(conn: psycopg.Connection, key: AssistantMemberKey, tz: str, *, by_assistant_only: bool) -> list[dict]:
    rows = conn.execute(
        f"""SELECT n.content, n.created_at, a.name AS author FROM ods.notes n
            LEFT JOIN ods.assistants a USING (site_id, assistant_id)
            WHERE n.site_id = %s AND n.member_id = %s {"AND n.assistant_id = %s" if by_assistant_only else ""}
            ORDER BY n.created_at DESC, n.note_id DESC LIMIT 5""",
        (key.site_id, key.member_id, key.assistant_id) if by_assistant_only else (key.site_id, key.member_id),
    ).fetchall()
    return [
        {"content": r["content"], "noted_by_name": r["author"] or "前台", "noted_at": _local(r["created_at"], tz)}
        for r in rows
    ]


def build_app4_prompt(
    conn: psycopg.Connection, key: AssistantMemberKey, *, tz: str = DEFAULT_TIMEZONE
) -> dict[str, Any]:
    """App4 (relationship): the pair's service history, tasks and the assistant's notes on the member."""
    assistant = _assistant(conn, key.site_id, key.assistant_id)
    core = _member_core(conn, key.site_id, key.member_id)
    profile = _profile_block(core, tz)
    as_of = core.get("as_of_date")
    services = conn.execute(
        """SELECT x.started_at, x.minutes, x.fee, s.area_code FROM ods.assistant_services x
           JOIN ods.settlements s USING (site_id, settlement_id)
           WHERE x.site_id = %s AND x.assistant_id = %s AND x.member_id = %s
           ORDER BY x.started_at DESC, x.service_id DESC LIMIT %s""",
        (key.site_id, key.assistant_id, key.member_id, RECENT_SERVICES),
    ).fetchall()
    tasks = _pair_tasks(conn, key, tz)
    if not services and not tasks:
        raise NothingToAsk("the assistant has neither served nor been tasked with the member")
    return {
        "site_id": key.site_id,
        "assistant": assistant,
        "member": _member_block(core, key.member_id, tz),
        "relation": _relation(conn, key, as_of, tz),
        "profile": profile,
        "recent_services": [
            {
                "started_at": _local(r["started_at"], tz),
                "service_minutes": r["minutes"],
                "fee": money(r["fee"]),
                "area_label": AREA_LABELS.get(r["area_code"], r["area_code"]),
            }
            for r in services
        ],
        "tasks": tasks,
        "notes_by_assistant": _pair_notes(conn, key, tz, by_assistant_only=True),
        "other_assistants": [
            a for a in _member_assistants(conn, key.site_id, key.member_id, tz) if a["assistant_id"] != key.assistant_id
        ],
    }


def build_app5_prompt(
    conn: psycopg.Connection, key: AssistantMemberKey, *, tz: str = DEFAULT_TIMEZONE
) -> dict[str, Any]:
    """App5 (tactics): App4's latest analysis of the pair, the open task and the latest notes."""
    analysis = cache.latest_valid(conn, key.site_id, "app4_analysis", key.target_id)
    if analysis is None:
        raise NothingToAsk("App4 has no analysis of the pair yet")
    assistant = _assistant(conn, key.site_id, key.assistant_id)
    core = _member_core(conn, key.site_id, key.member_id)
    tasks = _pair_tasks(conn, key, tz)
    open_task = next((t for t in tasks if t["status"] == "assigned"), None)
    app4 = {k: v for k, v in analysis.result_json.items() if not k.startswith("_")}
    return {
        "site_id": key.site_id,
        "assistant": assistant,
        "member": _member_block(core, key.member_id, tz),
        "profile": _profile_block(core, tz),
        "app4_result": app4,
        "app4_generated_at": _local(analysis.created_at, tz),
        "open_task": open_task,
        "recent_notes": _pair_notes(conn, key, tz, by_assistant_only=False)[:3],
    }


# ---------------------------------------------------------------------------------- registry

MemberBuilder = Callable[..., dict[str, Any]]

MEMBER_BUILDERS: dict[str, MemberBuilder] = {
    "app3_clue": build_app3_prompt,
    "app6_note": build_app6_prompt,
    "app7_customer": build_app7_prompt,
    "app8_consolidation": build_app8_prompt,
}
ASSISTANT_MEMBER_BUILDERS: dict[str, MemberBuilder] = {
    "app4_analysis": build_app4_prompt,
    "app5_tactics": build_app5_prompt,
}
TARGET_BUILDERS: dict[str, MemberBuilder] = {**MEMBER_BUILDERS, **ASSISTANT_MEMBER_BUILDERS}
