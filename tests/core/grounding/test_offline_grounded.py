"""The offline analyst's answers are 100 % grounded: every figure it writes comes from its prompt.

Over the demo venue (the generator ``make demo`` loads, one site, 400 business days so every
comparison window has figures): all 72 app2 partitions, and the member apps for a sample of members.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from tests.tools.helpers import scratch_db
from zqyy_assets.core import db, prompts
from zqyy_assets.core.business_date import DEFAULT_CUTOFF_HOURS, DEFAULT_TIMEZONE
from zqyy_assets.core.dws_sql import refresh_assistant_member, refresh_finance_area_daily, refresh_member_profile
from zqyy_assets.core.grounding import check_answer
from zqyy_assets.core.llm.offline.analyst import analyse
from zqyy_assets.core.partition_keys import all_app2_keys
from zqyy_assets.tools.demo_venue import generate_demo_venue

END = date(2026, 11, 20)
DAYS = 400


@pytest.fixture(scope="module")
def demo_venue(pg_server_url: str, template_db: str) -> Iterator[str]:
    with scratch_db(pg_server_url, template_db) as url:
        generate_demo_venue(url, sites=1, days=DAYS, seed=7, end_date=END, show_progress=False)
        with db.transaction(url) as conn:
            start = date.fromordinal(END.toordinal() - DAYS + 1)
            refresh_finance_area_daily(conn, start, END, tz=DEFAULT_TIMEZONE, cutoff_hours=DEFAULT_CUTOFF_HOURS)
            refresh_member_profile(conn, tz=DEFAULT_TIMEZONE, cutoff_hours=DEFAULT_CUTOFF_HOURS)
            refresh_assistant_member(conn)
        yield url


def test_offline_finance_insights_are_all_grounded(demo_venue: str) -> None:
    with db.connect(demo_venue) as conn:
        finance = prompts.load_site_finance(conn, 1)
    assert finance is not None
    ungrounded, numbers = [], 0
    for key in all_app2_keys():
        prompt = prompts.build_app2_prompt(finance, key.time_dimension, key.area)
        verdict = check_answer(key.app_name, prompt, analyse(key.app_name, prompt))
        assert verdict is not None
        numbers += verdict.numbers
        ungrounded += [(key.target_id, u) for u in verdict.ungrounded]
    assert ungrounded == []
    assert numbers > 72 * 8  # the insights do cite figures: several per answer
