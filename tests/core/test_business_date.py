from datetime import UTC, date, datetime

import pytest

from zqyy_assets.core import db
from zqyy_assets.core.business_date import business_date

CASES = [
    # 02:00 Shanghai on 3 Mar belongs to the business day of 2 Mar (cut-off 06:00).
    (datetime(2026, 3, 2, 18, 0, tzinfo=UTC), date(2026, 3, 2)),
    # 06:00 Shanghai exactly starts the new business day.
    (datetime(2026, 3, 2, 22, 0, tzinfo=UTC), date(2026, 3, 3)),
    (datetime(2026, 3, 2, 21, 59, tzinfo=UTC), date(2026, 3, 2)),
]


@pytest.mark.parametrize(("ts", "expected"), CASES)
def test_python_business_date(ts: datetime, expected: date) -> None:
    assert business_date(ts) == expected


def test_sql_business_date_matches_python(db_url: str) -> None:
    with db.connect(db_url) as conn:
        for ts, expected in CASES:
            got = conn.execute("SELECT dws.business_date(%s, 'Asia/Shanghai', 6) AS d", (ts,)).fetchone()["d"]
            assert got == expected == business_date(ts)


def test_naive_datetime_rejected() -> None:
    with pytest.raises(ValueError):
        business_date(datetime(2026, 3, 2, 12, 0))
