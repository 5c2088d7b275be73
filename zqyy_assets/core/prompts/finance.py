"""The app2/app2a prompt: one site's finance figures for a time dimension and an area, with the
comparison period, the split by area, the biggest movers and the best days. The site's daily
rows are loaded once (:func:`load_site_finance`) and every window is cut from them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.prompts.common import money
from zqyy_assets.core.prompts.metrics import FINANCE_METRICS, pct_change
from zqyy_assets.core.prompts.references import References
from zqyy_assets.core.prompts.windows import PeriodPair, Window, earliest_needed, period_pair
from zqyy_assets.core.vocabulary import AREA_LABELS, AREAS, HALL_AREAS, TIME_DIMENSION_LABELS

WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")

_SUMMED = ("revenue", "table_fee", "assistant_fee", "goods_amount", "discount", "member_revenue", "recharge_amount")
_COUNTED = ("orders", "member_orders", "recharge_count", "table_minutes")

# A window's figures by metric key (see FINANCE_METRICS): amounts as floats, counts as ints.
Metrics = dict[str, float | int]


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


def site_as_of(conn: DictConnection, site_id: int) -> date | None:
    """The site's latest business date with finance figures (DWS's own 'as of' rule)."""
    row = conn.execute(
        "SELECT max(biz_date) AS d FROM dws.finance_area_daily WHERE site_id = %s AND area_code = 'all'", (site_id,)
    ).fetchone()
    return row["d"] if row else None


def load_site_finance(conn: DictConnection, site_id: int, as_of: date | None = None) -> SiteFinance | None:
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


def _metrics(days: Iterable[FinanceDay], window: Window) -> Metrics:
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
    out: Metrics = {k: money(v) for k, v in sums.items()}
    out.update(counts)
    out["table_hours"] = round(counts["table_minutes"] / 60, 2)
    out["member_share"] = round(money(sums["member_revenue"]) / revenue, 4) if revenue else 0.0
    out["avg_order_value"] = round(revenue / counts["orders"], 2) if counts["orders"] else 0.0
    out["daily_avg_revenue"] = round(revenue / window.days, 2)
    out["active_days"] = len(active)
    return out


def _changes(current: Metrics, previous: Metrics) -> dict[str, float | None]:
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


def build_app2_prompt(
    finance: SiteFinance, time_dimension: str, area: str, *, refs: References | None = None
) -> dict[str, Any]:
    """Finance figures for one site, time dimension and area, with their comparison period.

    'all' reads the site's 'all' rows (the only ones with recharges); 'hall' sums hallA..C; any
    other area reads its own rows. 'all' and 'hall' also get the split by area and the movers.
    """
    pair = period_pair(time_dimension, finance.as_of)
    if refs is not None:
        _app2_refs(refs, finance, pair, area)
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


def _app2_refs(refs: References, finance: SiteFinance, pair: PeriodPair, area: str) -> None:
    """The windows, the area codes read and the daily DWS rows the prompt summed (its parts included)."""
    codes = ("all",) if area == "all" else _area_codes(area)
    read = sorted({*codes, *(c for part in _parts(area) for c in _area_codes(part))})
    rows = [
        d
        for d in finance.days
        if d.area_code in read and (pair.current.contains(d.biz_date) or pair.comparison.contains(d.biz_date))
    ]
    refs.note(
        site_id=finance.site_id,
        as_of_date=finance.as_of.isoformat(),
        time_dimension=pair.time_dimension,
        area=area,
        area_codes=read,
        period={"start": pair.current.start.isoformat(), "end": pair.current.end.isoformat()},
        comparison={"start": pair.comparison.start.isoformat(), "end": pair.comparison.end.isoformat()},
    )
    refs.table("dws.finance_area_daily", len(rows))


def _area_label(finance: SiteFinance, area: str) -> str:
    return finance.area_names.get(area) or AREA_LABELS[area]


def _parts(area: str) -> tuple[str, ...]:
    if area == "all":
        return ("hallA", "hallB", "hallC", "vip", "snooker", "mahjong", "ktv")
    if area == "hall":
        return HALL_AREAS
    return ()


_MOVER_METRICS = ("revenue", "table_fee", "assistant_fee", "goods_amount", "discount")


def _top_movers(
    finance: SiteFinance, area: str, pair: PeriodPair, current: Metrics, previous: Metrics
) -> list[dict[str, Any]]:
    """The five biggest absolute changes: by sub-area and metric for 'all'/'hall', by metric otherwise."""
    candidates: list[tuple[str, str, float, float]] = []  # (area, metric, current, previous)
    if _parts(area):
        for code in _parts(area):
            rows = [d for d in finance.days if d.area_code == code]
            cur, prev = _metrics(rows, pair.current), _metrics(rows, pair.comparison)
            candidates.extend((code, metric, cur[metric], prev[metric]) for metric in _MOVER_METRICS)
    else:
        candidates.extend(
            (area, metric, current[metric], previous[metric]) for metric in _MOVER_METRICS if metric != "revenue"
        )
    movers: list[dict[str, Any]] = [
        {
            "name": f"{_area_label(finance, code)}{FINANCE_METRICS[metric].label}",
            "metric": metric,
            "area": code,
            "current": cur,
            "previous": prev,
            "change": round(cur - prev, 2),
            "change_pct": pct_change(cur, prev),
        }
        for code, metric, cur, prev in candidates
        if cur or prev
    ]
    movers.sort(key=lambda m: (-abs(m["change"]), m["name"]))
    return movers[:5]


def _best_days(days: list[FinanceDay], window: Window) -> list[dict[str, Any]]:
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
