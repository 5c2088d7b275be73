"""The demo venue generator on a real Postgres: determinism, money consistency, patterns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.tools.helpers import ods_counts, ods_digests, scratch_db
from zqyy_assets.core import db
from zqyy_assets.core.business_date import business_date
from zqyy_assets.tools.demo_venue import (
    SitesExistError,
    day_factor,
    generate_demo_venue,
    holiday,
)

# 28 business days spanning the 2025 National Day / Mid-Autumn holiday (Oct 1-8).
END = date(2025, 10, 12)
DAYS = 28
START = END - timedelta(days=DAYS - 1)
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def venue(pg_server_url: str, template_db: str) -> Iterator[tuple[str, dict[str, int]]]:
    """One generated site x 28 days, shared by the read-only checks of this module."""
    with scratch_db(pg_server_url, template_db) as url:
        yield url, generate_demo_venue(url, sites=1, days=DAYS, seed=11, end_date=END, show_progress=False)


def _one(url: str, query: str, params: tuple = ()) -> dict:
    with db.connect(url) as conn:
        return conn.execute(query, params).fetchone()


def _all(url: str, query: str, params: tuple = ()) -> list[dict]:
    with db.connect(url) as conn:
        return conn.execute(query, params).fetchall()


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_identical_rows_and_another_seed_does_not(db_url: str) -> None:
    args = dict(sites=1, days=10, end_date=date(2025, 3, 31), show_progress=False)
    first_counts = generate_demo_venue(db_url, seed=5, **args)
    first = ods_digests(db_url)

    with pytest.raises(SitesExistError, match="site"):
        generate_demo_venue(db_url, seed=5, **args)
    assert ods_digests(db_url) == first  # the refusal changed nothing

    assert generate_demo_venue(db_url, seed=5, replace=True, **args) == first_counts
    assert ods_digests(db_url) == first

    generate_demo_venue(db_url, seed=6, replace=True, **args)
    other = ods_digests(db_url)
    assert other["settlements"] != first["settlements"]
    assert other["members"] != first["members"]


def test_replace_touches_only_the_given_sites(db_url: str) -> None:
    args = dict(days=5, end_date=date(2025, 3, 31), seed=9, show_progress=False)
    generate_demo_venue(db_url, sites=2, **args)
    site1, site2 = ods_digests(db_url, [1]), ods_digests(db_url, [2])
    assert site1 != site2  # each site has its own stream

    # Regenerating site 2 alone (the DELETE path: site 1 stays loaded) gives the same rows.
    counts = generate_demo_venue(db_url, sites=1, first_site_id=2, replace=True, **args)
    assert counts["sites"] == 1
    assert ods_digests(db_url, [1]) == site1
    assert ods_digests(db_url, [2]) == site2


# --- money and time consistency ------------------------------------------------------------------


def test_volumes_are_realistic(venue: tuple[str, dict[str, int]]) -> None:
    url, counts = venue
    assert counts == ods_counts(url)
    assert counts["areas"] == 7
    assert 150 <= counts["settlements"] / DAYS <= 300
    assert 300 <= counts["members"] <= 2000
    for table in ("assistant_services", "recharges", "notes", "tasks"):
        assert counts[table] > 0, table


def test_totals_add_up_to_the_cent(venue: tuple[str, dict[str, int]]) -> None:
    url, _ = venue
    bad = _one(
        url,
        """SELECT count(*) FILTER (WHERE total <> table_fee + assistant_fee + goods_amount - discount) AS total_off,
                  count(*) FILTER (WHERE total < 0 OR discount > table_fee + assistant_fee + goods_amount) AS negative,
                  count(*) FILTER (WHERE table_minutes * 60 <> extract(epoch FROM ended_at - started_at))
                    AS minutes_off,
                  count(*) FILTER (WHERE settled_at < ended_at OR settled_at > ended_at + interval '10 minutes')
                    AS settle_off,
                  count(*) FILTER (WHERE pay_method = '现金' AND total <> trunc(total)) AS cash_cents,
                  count(*) FILTER (WHERE pay_method = '会员卡' AND member_id IS NULL) AS card_walkin
             FROM ods.settlements""",
    )
    assert bad == {k: 0 for k in bad}
    pay = {r["pay_method"] for r in _all(url, "SELECT DISTINCT pay_method FROM ods.settlements")}
    assert pay == {"微信", "支付宝", "会员卡", "现金"}


def test_table_fee_and_area_follow_the_table(venue: tuple[str, dict[str, int]]) -> None:
    url, _ = venue
    bad = _one(
        url,
        """SELECT count(*) FILTER (WHERE s.area_code <> t.area_code) AS area_off,
                  count(*) FILTER (WHERE s.table_fee <> s.table_minutes * t.price_per_minute) AS fee_off
             FROM ods.settlements s JOIN ods.tables t USING (site_id, table_id)""",
    )
    assert bad == {"area_off": 0, "fee_off": 0}
    prices = _all(url, "SELECT area_code, min(price_per_minute) AS p FROM ods.tables GROUP BY 1")
    by_area = {r["area_code"]: r["p"] for r in prices}
    assert by_area["vip"] > by_area["hallA"] > by_area["hallC"] and by_area["ktv"] > by_area["snooker"]
    # A table is never booked twice at once.
    overlaps = _one(
        url,
        """SELECT count(*) AS n FROM (
             SELECT started_at, lag(ended_at) OVER (PARTITION BY site_id, table_id ORDER BY started_at) AS prev_end
               FROM ods.settlements) x
            WHERE prev_end > started_at""",
    )
    assert overlaps["n"] == 0


def test_assistant_fees_match_services(venue: tuple[str, dict[str, int]]) -> None:
    url, _ = venue
    bad = _one(
        url,
        """WITH svc AS (SELECT site_id, settlement_id, sum(fee) AS fee FROM ods.assistant_services GROUP BY 1, 2)
           SELECT count(*) FILTER (WHERE s.assistant_fee <> coalesce(svc.fee, 0)) AS n
             FROM ods.settlements s LEFT JOIN svc USING (site_id, settlement_id)""",
    )
    assert bad["n"] == 0
    bad = _one(
        url,
        """SELECT count(*) FILTER (WHERE v.fee <> v.minutes * a.fee_per_minute) AS fee_off,
                  count(*) FILTER (WHERE v.started_at < s.started_at OR v.ended_at > s.ended_at) AS outside,
                  count(*) FILTER (WHERE v.member_id IS DISTINCT FROM s.member_id) AS member_off
             FROM ods.assistant_services v
             JOIN ods.settlements s USING (site_id, settlement_id)
             JOIN ods.assistants a USING (site_id, assistant_id)""",
    )
    assert bad == {"fee_off": 0, "outside": 0, "member_off": 0}
    share = _one(
        url,
        "SELECT (SELECT count(DISTINCT settlement_id) FROM ods.assistant_services)::float / count(*) AS s"
        " FROM ods.settlements",
    )
    assert 0.05 < share["s"] < 0.5


def test_business_dates_stay_in_the_window_across_midnight(venue: tuple[str, dict[str, int]]) -> None:
    url, _ = venue
    rows = _all(url, "SELECT started_at, settled_at FROM ods.settlements")
    crossing = 0
    for r in rows:
        biz = business_date(r["settled_at"])
        assert START <= biz <= END
        # Each visit belongs to the business date it started on (the venue closes at 06:00).
        assert biz == business_date(r["started_at"])
        if r["started_at"].astimezone(SHANGHAI).date() != r["settled_at"].astimezone(SHANGHAI).date():
            crossing += 1
    assert crossing > 0  # some visits do cross midnight
    sql_side = _one(
        url,
        """SELECT min(dws.business_date(settled_at, 'Asia/Shanghai', 6)) AS lo,
                  max(dws.business_date(settled_at, 'Asia/Shanghai', 6)) AS hi FROM ods.settlements""",
    )
    assert (sql_side["lo"], sql_side["hi"]) == (START, END)


# --- patterns ---------------------------------------------------------------------------------------


def _per_business_date(url: str) -> dict[date, int]:
    rows = _all(
        url,
        "SELECT dws.business_date(settled_at, 'Asia/Shanghai', 6) AS d, count(*) AS n FROM ods.settlements GROUP BY 1",
    )
    return {r["d"]: r["n"] for r in rows}


def test_evening_peak(venue: tuple[str, dict[str, int]]) -> None:
    url, _ = venue
    hours = {
        int(r["h"]): r["n"]
        for r in _all(
            url,
            "SELECT extract(hour FROM started_at AT TIME ZONE 'Asia/Shanghai') AS h, count(*) AS n"
            " FROM ods.settlements GROUP BY 1",
        )
    }
    total = sum(hours.values())
    evening = sum(hours.get(h, 0) for h in range(18, 24)) / total
    morning = sum(hours.get(h, 0) for h in range(6, 12)) / total
    assert evening > 3 * morning
    assert max(hours, key=hours.get) in (20, 21, 22)
    afternoon_to_2am = sum(hours.get(h, 0) for h in (*range(14, 24), 0, 1)) / total
    assert afternoon_to_2am > 0.8


def test_weekends_and_holidays_are_busier(venue: tuple[str, dict[str, int]]) -> None:
    url, _ = venue
    per_day = _per_business_date(url)
    assert len(per_day) == DAYS
    plain = {d: n for d, n in per_day.items() if holiday(d) is None}
    weekend = [n for d, n in plain.items() if d.weekday() >= 5]
    weekday = [n for d, n in plain.items() if d.weekday() < 5]
    holidays = [n for d, n in per_day.items() if holiday(d) is not None]
    assert sum(weekend) / len(weekend) > 1.2 * sum(weekday) / len(weekday)
    assert sum(holidays) / len(holidays) > 1.2 * sum(weekday) / len(weekday)


def test_holiday_table() -> None:
    assert holiday(date(2025, 10, 3)).name == "国庆"
    assert holiday(date(2026, 5, 2)).name == "劳动节"
    assert holiday(date(2025, 1, 30)).name == "春节"
    assert holiday(date(2025, 3, 12)) is None
    # A Wednesday in the National Day week beats a plain Wednesday; Spring Festival eve is quiet.
    assert day_factor(date(2025, 10, 1)) > day_factor(date(2025, 10, 15))
    assert day_factor(date(2025, 1, 28)) < day_factor(date(2025, 1, 21))


def test_members_loyal_churning_and_new(venue: tuple[str, dict[str, int]]) -> None:
    url, _ = venue
    visits = _all(
        url,
        """SELECT member_id, count(*) AS n,
                  count(*) FILTER (WHERE settled_at < %s) AS early, count(*) FILTER (WHERE settled_at >= %s) AS late
             FROM ods.settlements WHERE member_id IS NOT NULL GROUP BY 1""",
        (datetime(2025, 9, 29, 6, tzinfo=SHANGHAI), datetime(2025, 9, 29, 6, tzinfo=SHANGHAI)),
    )
    assert any(v["n"] >= 8 for v in visits)  # loyal
    assert sum(1 for v in visits if v["early"] >= 2 and v["late"] == 0) >= 5  # active, then gone
    member_share = sum(v["n"] for v in visits) / _one(url, "SELECT count(*) AS n FROM ods.settlements")["n"]
    assert 0.3 < member_share < 0.8
    # New members register in the window at their first visit.
    new = _one(
        url,
        """SELECT count(*) AS joined,
                  count(*) FILTER (WHERE first.started_at >= m.registered_at
                                     AND first.started_at < m.registered_at + interval '3 hours') AS came
             FROM ods.members m
             LEFT JOIN LATERAL (SELECT min(started_at) AS started_at FROM ods.settlements s
                                 WHERE s.site_id = m.site_id AND s.member_id = m.member_id) first ON true
            WHERE m.registered_at >= %s""",
        (datetime(START.year, START.month, START.day, 6, tzinfo=SHANGHAI),),
    )
    assert new["joined"] >= 10
    assert new["came"] >= 0.8 * new["joined"]
    before = _one(
        url,
        """SELECT count(*) AS n FROM ods.settlements s JOIN ods.members m USING (site_id, member_id)
            WHERE s.started_at < m.registered_at""",
    )
    assert before["n"] == 0


def test_recharges_levels_and_discounts(venue: tuple[str, dict[str, int]]) -> None:
    url, _ = venue
    tiers = {(r["amount"], r["bonus"]) for r in _all(url, "SELECT DISTINCT amount, bonus FROM ods.recharges")}
    allowed = {(500, 50), (1000, 150), (2000, 400), (3000, 700), (5000, 1500)}
    assert tiers <= allowed and len(tiers) >= 3
    levels = {r["level"] for r in _all(url, "SELECT DISTINCT level FROM ods.members")}
    assert levels == {"普通", "银卡", "金卡", "钻石"}
    discount = _one(
        url,
        """SELECT avg(discount / nullif(table_fee, 0))
                    FILTER (WHERE member_id IS NOT NULL AND pay_method <> '现金') AS member,
                  avg(discount / nullif(table_fee, 0))
                    FILTER (WHERE member_id IS NULL AND pay_method <> '现金') AS walkin
             FROM ods.settlements""",
    )
    assert discount["member"] > discount["walkin"]


def test_notes_and_tasks(venue: tuple[str, dict[str, int]]) -> None:
    url, _ = venue
    notes = [r["content"] for r in _all(url, "SELECT content FROM ods.notes")]
    assert len(set(notes)) > 0.5 * len(notes)  # varied, not one template
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in notes)  # written in Chinese
    written_by = _one(url, "SELECT count(*) FILTER (WHERE assistant_id IS NOT NULL) AS a, count(*) AS n FROM ods.notes")
    assert written_by["a"] > 0.7 * written_by["n"]

    kinds = {r["task_type"] for r in _all(url, "SELECT DISTINCT task_type FROM ods.tasks")}
    assert kinds == {"回访", "召回"}
    # 召回 goes to members who have not been in for three weeks.
    recent = _one(
        url,
        """SELECT count(*) AS n FROM ods.tasks t
            WHERE t.task_type = '召回' AND EXISTS (
                  SELECT 1 FROM ods.settlements s
                   WHERE s.site_id = t.site_id AND s.member_id = t.member_id
                     AND s.started_at BETWEEN t.assigned_at - interval '20 days' AND t.assigned_at)""",
    )
    assert recent["n"] == 0
    snapshot_end = datetime(END.year, END.month, END.day, 6, tzinfo=SHANGHAI) + timedelta(days=1)
    states = _one(
        url,
        """SELECT count(*) FILTER (WHERE (status = 'done') <> (completed_at IS NOT NULL)) AS status_off,
                  count(*) FILTER (WHERE completed_at > %s OR assigned_at > %s) AS future,
                  count(*) FILTER (WHERE due_at <= assigned_at) AS due_off
             FROM ods.tasks""",
        (snapshot_end, snapshot_end),
    )
    assert states == {"status_off": 0, "future": 0, "due_off": 0}


def test_visits_follow_the_venue_timezone(db_url: str) -> None:
    # The same seed in another zone: the same local hours and business dates, other instants.
    args = dict(sites=1, days=5, seed=3, end_date=date(2025, 3, 20), show_progress=False)  # no DST change
    generate_demo_venue(db_url, **args)
    shanghai = _all(db_url, "SELECT settlement_id, settled_at FROM ods.settlements ORDER BY 1")
    generate_demo_venue(db_url, replace=True, timezone="Europe/Berlin", **args)
    berlin = _all(db_url, "SELECT settlement_id, settled_at FROM ods.settlements ORDER BY 1")
    assert [r["settlement_id"] for r in berlin] == [r["settlement_id"] for r in shanghai]
    for a, b in zip(shanghai, berlin, strict=True):
        assert (
            a["settled_at"].astimezone(SHANGHAI).time() == b["settled_at"].astimezone(ZoneInfo("Europe/Berlin")).time()
        )
        assert (b["settled_at"] - a["settled_at"]).total_seconds() == 7 * 3600  # Berlin is UTC+1 in March
