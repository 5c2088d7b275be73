from datetime import UTC, date, datetime
from decimal import Decimal

import dagster as dg
import pytest

from zqyy_assets.core import db
from zqyy_assets.defs.dws.assets import (
    dws_assistant_member,
    dws_finance_area_daily,
    dws_member_profile,
)
from zqyy_assets.defs.dws.checks import (
    assistant_member_reconciles_with_ods,
    finance_reconciles_with_ods,
    member_profile_reconciles_with_ods,
)
from zqyy_assets.defs.ods.assets import ods_assets
from zqyy_assets.defs.resources import PostgresResource, VenueCalendarResource

from .small_venue import load_small_venue

DWS = [dws_finance_area_daily, dws_member_profile, dws_assistant_member]
CHECKS = [finance_reconciles_with_ods, member_profile_reconciles_with_ods, assistant_member_reconciles_with_ods]


def _resources(db_url: str) -> dict:
    return {"postgres": PostgresResource(database_url=db_url), "venue_calendar": VenueCalendarResource()}


def _materialize_range(db_url: str, start: str, end: str, *, with_checks: bool = False) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ods_assets, dws_finance_area_daily, *(CHECKS[:1] if with_checks else [])],
        selection=[dws_finance_area_daily],
        resources=_resources(db_url),
        instance=dg.DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
    )


@pytest.fixture
def small_venue(db_url: str) -> str:
    with db.transaction(db_url) as conn:
        load_small_venue(conn)
    return db_url


def _finance(db_url: str) -> dict[tuple[date, str], dict]:
    with db.connect(db_url) as conn:
        rows = conn.execute("SELECT * FROM dws.finance_area_daily ORDER BY biz_date, area_code").fetchall()
    return {(r["biz_date"], r["area_code"]): r for r in rows}


def test_finance_area_daily_equals_hand_computed(small_venue: str) -> None:
    result = _materialize_range(small_venue, "2026-03-01", "2026-03-04")
    assert result.success
    rows = _finance(small_venue)
    d2, d3 = date(2026, 3, 2), date(2026, 3, 3)
    assert set(rows) == {(d2, "hallA"), (d2, "vip"), (d2, "all"), (d3, "vip"), (d3, "all")}

    hall = rows[(d2, "hallA")]  # settlement 2 settled at 02:31 belongs to the previous business day
    assert (hall["revenue"], hall["table_fee"], hall["assistant_fee"], hall["goods_amount"], hall["discount"]) == (
        Decimal("325.50"),
        Decimal("210.00"),
        Decimal("90.00"),
        Decimal("35.50"),
        Decimal("10.00"),
    )
    assert (hall["orders"], hall["table_minutes"], hall["table_hours"]) == (2, 210, Decimal("3.50"))
    assert (hall["member_revenue"], hall["member_orders"]) == (Decimal("235.50"), 1)

    # 05:59:59 is still the previous business day (cut-off 06:00)
    assert rows[(d2, "vip")]["revenue"] == Decimal("100.00")

    whole = rows[(d2, "all")]
    assert (whole["revenue"], whole["orders"], whole["table_hours"]) == (Decimal("425.50"), 3, Decimal("4.33"))
    assert whole["member_share"] == Decimal("0.7885")  # 335.50 / 425.50
    assert whole["recharge_amount"] == Decimal("0")

    day3 = rows[(d3, "all")]
    assert (day3["revenue"], day3["discount"], day3["recharge_amount"], day3["recharge_count"]) == (
        Decimal("320.00"),
        Decimal("20.00"),
        Decimal("1000.00"),
        1,
    )
    assert rows[(d3, "vip")]["recharge_amount"] == 0  # recharges belong to no area


def test_finance_partition_rerun_is_idempotent_and_scoped(small_venue: str) -> None:
    _materialize_range(small_venue, "2026-03-01", "2026-03-04")
    before = _finance(small_venue)
    # Re-running one day replaces only that day's rows with the same values.
    _materialize_range(small_venue, "2026-03-03", "2026-03-03")
    after = _finance(small_venue)
    assert set(after) == set(before)
    for key, row in before.items():
        assert {k: v for k, v in row.items() if k != "computed_at"} == {
            k: v for k, v in after[key].items() if k != "computed_at"
        }


def test_member_profile_equals_hand_computed(small_venue: str) -> None:
    result = dg.materialize(
        [*ods_assets, dws_member_profile],
        selection=[dws_member_profile],
        resources=_resources(small_venue),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    with db.connect(small_venue) as conn:
        rows = {r["member_id"]: r for r in conn.execute("SELECT * FROM dws.member_profile")}
    assert set(rows) == {100, 101, 102}
    m100 = rows[100]
    assert m100["as_of_date"] == date(2026, 3, 3)
    assert (m100["visits_30d"], m100["spend_30d"], m100["recency_days"]) == (2, Decimal("335.50"), 1)
    assert m100["last_visit_at"] == datetime(2026, 3, 2, 21, 59, 59, tzinfo=UTC)
    assert (m100["favourite_area"], m100["favourite_time_slot"], m100["favourite_assistant_id"]) == (
        "hallA",
        "evening",
        7,
    )
    assert m100["spend_trend"] == "new"
    m101 = rows[101]
    assert (m101["spend_180d"], m101["recharge_180d"], m101["favourite_area"]) == (
        Decimal("320.00"),
        Decimal("1000.00"),
        "vip",
    )
    assert m101["favourite_assistant_id"] is None
    m102 = rows[102]  # never visited
    assert (m102["visits_180d"], m102["spend_trend"], m102["last_visit_at"]) == (0, "inactive", None)


def test_assistant_member_equals_hand_computed(small_venue: str) -> None:
    result = dg.materialize(
        [*ods_assets, dws_assistant_member],
        selection=[dws_assistant_member],
        resources=_resources(small_venue),
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    with db.connect(small_venue) as conn:
        rows = conn.execute("SELECT * FROM dws.assistant_member").fetchall()
    assert len(rows) == 1
    assert (
        rows[0]["assistant_id"],
        rows[0]["member_id"],
        rows[0]["services"],
        rows[0]["minutes"],
        rows[0]["fees"],
    ) == (7, 100, 1, 60, Decimal("90.00"))


def _run_checks(db_url: str) -> dict[str, dg.AssetCheckEvaluation]:
    result = dg.materialize(
        [*ods_assets, *DWS, *CHECKS],
        selection=dg.AssetSelection.checks(*CHECKS),
        resources=_resources(db_url),
        instance=dg.DagsterInstance.ephemeral(),
    )
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def _materialize_all(db_url: str) -> None:
    _materialize_range(db_url, "2026-03-01", "2026-03-04")
    for asset in (dws_member_profile, dws_assistant_member):
        dg.materialize(
            [*ods_assets, asset],
            selection=[asset],
            resources=_resources(db_url),
            instance=dg.DagsterInstance.ephemeral(),
        )


def test_checks_pass_on_consistent_data_with_evidence(small_venue: str) -> None:
    _materialize_all(small_venue)
    evaluations = _run_checks(small_venue)
    assert {name: e.passed for name, e in evaluations.items()} == {c.check_key.name: True for c in CHECKS}
    finance = evaluations["finance_reconciles_with_ods"].metadata
    assert finance["ods_revenue"].value == finance["dws_revenue"].value == "745.50"
    assert finance["site_days_compared"].value == 2


@pytest.mark.parametrize(
    ("statement", "failing_check"),
    [
        (
            "UPDATE dws.finance_area_daily SET revenue = revenue + 0.01"
            " WHERE area_code = 'all' AND biz_date = '2026-03-02'",
            "finance_reconciles_with_ods",
        ),
        (
            "UPDATE dws.finance_area_daily SET goods_amount = goods_amount - 0.01 WHERE area_code = 'hallA'",
            "finance_reconciles_with_ods",
        ),
        (
            "UPDATE dws.member_profile SET spend_180d = spend_180d + 0.01 WHERE member_id = 101",
            "member_profile_reconciles_with_ods",
        ),
        ("UPDATE dws.assistant_member SET fees = fees - 0.01", "assistant_member_reconciles_with_ods"),
    ],
)
def test_checks_fail_when_a_total_is_off_by_one_cent(small_venue: str, statement: str, failing_check: str) -> None:
    _materialize_all(small_venue)
    with db.transaction(small_venue) as conn:
        conn.execute(statement)
    evaluations = _run_checks(small_venue)
    failed = {name for name, e in evaluations.items() if not e.passed}
    assert failed == {failing_check}
