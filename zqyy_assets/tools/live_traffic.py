"""``zqyy live-traffic``: new settlements, notes and tasks for a running demo, at a steady pace.

Rows go in through the live ingestion path (``ingest.py``), so each one writes its business
event and the sensors pick it up: watch ``ai_events_sensor`` tick and the chain runs appear in
the Dagster UI (http://127.0.0.1:3000), and the events' status in the API.

    zqyy live-traffic --rate 6 --minutes 10      # one event every 10 s for 10 minutes

Members, tables and assistants are the demo venue's own; about 70 % of events are
settlements (a third of them with an assistant), 20 % notes, 10 % follow-up tasks.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from zqyy_assets.core import db, embedded_pg, ingest
from zqyy_assets.core.settings import VenueSettings

_NOTES = (
    "今天来打了两个小时，说最近工作压力大，想多练练球放松",
    "带了两个朋友一起来，问有没有团购套餐",
    "反映{area}空调有点冷，已跟前台说",
    "喜欢喝冰红茶，下次来可以提前备好",
    "说下个月生日，想在店里和朋友一起过",
    "球技进步很快，想约助教系统练习加塞",
    "问了储值活动，说月底发工资再考虑",
    "最近来得少了，说搬家后离店远了",
    "对陪练服务很满意，说下次还约同一位助教",
    "想参加店里周末的中式八球比赛",
)
_PAY = (("微信", 60), ("支付宝", 25), ("会员卡", 10), ("现金", 5))


@dataclass
class SiteCatalog:
    site_id: int
    members: list[int]
    tables: list[tuple[int, str, Decimal]]  # table_id, area_code, price per minute
    assistants: list[tuple[int, Decimal]]  # assistant_id, fee per minute
    next_ids: dict[str, int]  # next free id per ODS table


_ID_COLUMNS = {
    "settlements": "settlement_id",
    "assistant_services": "service_id",
    "notes": "note_id",
    "tasks": "task_id",
}


def _next_ids(conn: psycopg.Connection, site_id: int) -> dict[str, int]:
    return {
        table: conn.execute(
            f"SELECT coalesce(max({column}), 0) + 1 AS n FROM ods.{table} WHERE site_id = %s", (site_id,)
        ).fetchone()["n"]
        for table, column in _ID_COLUMNS.items()
    }


def load_catalog(conn: psycopg.Connection) -> list[SiteCatalog]:
    """Active sites that have members and tables, with what live traffic picks from."""
    sites = []
    for row in conn.execute("SELECT site_id FROM ods.sites WHERE is_active ORDER BY site_id").fetchall():
        site_id = row["site_id"]
        members = [
            r["member_id"]
            for r in conn.execute("SELECT member_id FROM ods.members WHERE site_id = %s ORDER BY member_id", (site_id,))
        ]
        tables = [
            (r["table_id"], r["area_code"], r["price_per_minute"])
            for r in conn.execute(
                "SELECT table_id, area_code, price_per_minute FROM ods.tables WHERE site_id = %s ORDER BY table_id",
                (site_id,),
            )
        ]
        assistants = [
            (r["assistant_id"], r["fee_per_minute"])
            for r in conn.execute(
                "SELECT assistant_id, fee_per_minute FROM ods.assistants WHERE site_id = %s AND is_active "
                "ORDER BY assistant_id",
                (site_id,),
            )
        ]
        if members and tables:
            sites.append(SiteCatalog(site_id, members, tables, assistants, _next_ids(conn, site_id)))
    return sites


def _take_id(site: SiteCatalog, table: str) -> int:
    value = site.next_ids[table]
    site.next_ids[table] = value + 1
    return value


def make_settlement(
    rnd: random.Random, site: SiteCatalog, now: datetime
) -> tuple[ingest.Settlement, list[ingest.AssistantService]]:
    table_id, area, price = rnd.choice(site.tables)
    minutes = rnd.randint(30, 180)
    ended = now - timedelta(minutes=rnd.randint(1, 5))
    started = ended - timedelta(minutes=minutes)
    member_id = rnd.choice(site.members) if rnd.random() < 0.9 else None  # a tenth are walk-ins
    services = []
    if site.assistants and rnd.random() < 0.35:
        assistant_id, fee = rnd.choice(site.assistants)
        served = min(minutes, rnd.choice((60, 90, 120)))
        services.append(
            ingest.AssistantService(
                service_id=_take_id(site, "assistant_services"),
                assistant_id=assistant_id,
                started_at=started,
                ended_at=started + timedelta(minutes=served),
                minutes=served,
                fee=fee * served,
            )
        )
    table_fee = price * minutes
    assistant_fee = sum((s.fee for s in services), Decimal("0"))
    goods = Decimal(rnd.choice((0, 0, 8, 15, 30, 48, 76)))
    discount = (
        (table_fee * Decimal("0.1")).quantize(Decimal("0.01")) if member_id and rnd.random() < 0.5 else Decimal("0")
    )
    settlement = ingest.Settlement(
        site_id=site.site_id,
        settlement_id=_take_id(site, "settlements"),
        member_id=member_id,
        area_code=area,
        table_id=table_id,
        started_at=started,
        ended_at=ended,
        settled_at=ended + timedelta(seconds=rnd.randint(20, 120)),
        table_minutes=minutes,
        table_fee=table_fee,
        assistant_fee=assistant_fee,
        goods_amount=goods,
        discount=discount,
        total=table_fee + assistant_fee + goods - discount,
        pay_method=rnd.choices([p for p, _ in _PAY], weights=[w for _, w in _PAY])[0],
    )
    return settlement, services


def make_note(rnd: random.Random, site: SiteCatalog, now: datetime) -> ingest.Note:
    area = rnd.choice(site.tables)[1]
    writer = rnd.choice(site.assistants)[0] if site.assistants and rnd.random() < 0.8 else None
    return ingest.Note(
        site.site_id,
        _take_id(site, "notes"),
        rnd.choice(site.members),
        writer,
        rnd.choice(_NOTES).format(area=area),
        now,
    )


def make_task(rnd: random.Random, site: SiteCatalog, now: datetime) -> ingest.Task:
    return ingest.Task(
        site.site_id,
        _take_id(site, "tasks"),
        rnd.choice(site.members),
        rnd.choice(site.assistants)[0],
        rnd.choice(("回访", "召回")),
        now,
        now + timedelta(days=3),
    )


def add_one(
    conn: psycopg.Connection,
    rnd: random.Random,
    sites: list[SiteCatalog],
    now: datetime,
    venue: VenueSettings | None = None,
) -> tuple[str, str]:
    """Write one live row and its event (dated in the venue's calendar); (kind, description)."""
    venue = venue or VenueSettings()
    calendar = {"timezone": venue.venue_timezone, "cutoff_hours": venue.business_day_cutoff_hours}
    site = rnd.choice(sites)
    kind = rnd.choices(("settlement", "note", "task"), weights=(70, 20, 10))[0]
    if kind == "task" and not site.assistants:
        kind = "note"
    if kind == "settlement":
        settlement, services = make_settlement(rnd, site, now)
        event_id = ingest.ingest_live_settlement(conn, settlement, services, **calendar)
        who = f"member {settlement.member_id}" if settlement.member_id else "walk-in (no event)"
        served = f", assistant {services[0].assistant_id}" if services else ""
        return kind, f"settlement {site.site_id}/{settlement.settlement_id} {who}{served} -> event {event_id}"
    if kind == "note":
        note = make_note(rnd, site, now)
        event_id = ingest.ingest_live_note(conn, note, **calendar)
        return kind, f"note {site.site_id}/{note.note_id} member {note.member_id} -> event {event_id}"
    task = make_task(rnd, site, now)
    event_id = ingest.ingest_live_task(conn, task, **calendar)
    return (
        kind,
        f"task {site.site_id}/{task.task_id} member {task.member_id} assistant {task.assistant_id} -> event {event_id}",
    )


def run_live_traffic(
    database_url: str,
    *,
    rate_per_minute: float,
    minutes: float,
    seed: int | None = None,
    say: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
) -> Counter:
    """Add events at ``rate_per_minute`` for ``minutes``; returns how many of each kind."""
    if rate_per_minute <= 0 or minutes <= 0:
        raise ValueError("--rate and --minutes must be positive")
    rnd = random.Random(seed)
    venue = VenueSettings()
    counts: Counter = Counter()
    with db.connect(database_url, autocommit=True) as conn:
        sites = load_catalog(conn)
        if not sites:
            raise SystemExit("live-traffic: no active site with members and tables; run `make demo` first")
        interval = 60.0 / rate_per_minute
        total = max(1, round(rate_per_minute * minutes))
        pace = f"{minutes:g} min ({rate_per_minute:g}/min)"
        say(f"[live] {total} events over {pace} at {len(sites)} site(s); Ctrl-C stops")
        started = time.monotonic()
        try:
            for n in range(total):
                delay = started + n * interval - time.monotonic()
                if delay > 0:
                    sleep(delay)
                try:
                    kind, text = add_one(conn, rnd, sites, datetime.now(UTC), venue)
                except psycopg.errors.UniqueViolation:
                    # Another writer took the ids this run counted on: re-read them and go on.
                    for site in sites:
                        site.next_ids = _next_ids(conn, site.site_id)
                    kind, text = add_one(conn, rnd, sites, datetime.now(UTC), venue)
                counts[kind] += 1
                say(f"[live] {datetime.now():%H:%M:%S} {text}")
        except KeyboardInterrupt:
            say("[live] stopped")
    say("[live] added " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return counts


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def cmd_live_traffic(args: argparse.Namespace) -> None:
    database_url, _ = embedded_pg.app_database_url()
    run_live_traffic(database_url, rate_per_minute=args.rate, minutes=args.minutes, seed=args.seed)


def register(sub: argparse._SubParsersAction) -> None:
    """The ``live-traffic`` subcommand, for ``zqyy_assets.tools.cli``."""
    p = sub.add_parser("live-traffic", help="add live settlements, notes and tasks to a running demo at a steady pace")
    p.add_argument("--rate", type=_positive_number, default=6.0, help="events per minute (default 6)")
    p.add_argument("--minutes", type=_positive_number, default=10.0, help="how long to run (default 10)")
    p.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable stream")
    p.set_defaults(func=cmd_live_traffic)
