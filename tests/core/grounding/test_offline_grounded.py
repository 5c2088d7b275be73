"""The offline analyst's answers are 100 % grounded: every figure it writes comes from its prompt.

Over the demo venue (the generator ``make demo`` loads, one site, 400 business days so every
comparison window has figures): all 72 app2 partitions, and every member app for a sample of
members and assistant x member pairs, asked in chain order through ``core/answering`` (so the
verdicts are the ones stored on the cache rows, and App8/App7/App5 read the answers before them).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from tests.tools.helpers import scratch_db
from zqyy_assets.core import answering, db, prompts
from zqyy_assets.core.answering import Ask, RunInfo
from zqyy_assets.core.business_date import DEFAULT_CUTOFF_HOURS, DEFAULT_TIMEZONE
from zqyy_assets.core.dws_sql import refresh_assistant_member, refresh_finance_area_daily, refresh_member_profile
from zqyy_assets.core.grounding import check_answer
from zqyy_assets.core.llm.offline.analyst import analyse
from zqyy_assets.core.llm.service import LLMService
from zqyy_assets.core.llm.settings import load_settings
from zqyy_assets.core.partition_keys import AssistantMemberKey, MemberKey, all_app2_keys
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


MEMBER_CHAIN = ("app3_clue", "app6_note", "app8_consolidation", "app7_customer")
PAIR_CHAIN = ("app4_analysis", "app5_tactics")


def _asks(url: str, app_name: str, keys: list[MemberKey] | list[AssistantMemberKey]) -> list[Ask]:
    asks = []
    with db.connect(url) as conn:
        for key in keys:
            try:
                prompt = prompts.TARGET_BUILDERS[app_name](conn, key, tz=DEFAULT_TIMEZONE)
            except prompts.NothingToAsk:
                continue
            asks.append(Ask(key.site_id, app_name, key.target_id, prompt, prompts.PROMPT_VERSIONS[app_name]))
    return asks


def test_offline_member_answers_are_all_grounded(demo_venue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)  # the offline analyst
    with db.connect(demo_venue) as conn:
        members = [
            MemberKey(1, r["member_id"])
            for r in conn.execute(
                """SELECT member_id FROM dws.member_profile WHERE site_id = 1
                   ORDER BY visits_180d DESC, member_id LIMIT 12"""
            )
        ]
        noted = conn.execute("SELECT DISTINCT member_id FROM ods.notes WHERE site_id = 1 ORDER BY 1 LIMIT 6")
        members += [MemberKey(1, r["member_id"]) for r in noted]
        pairs = [
            AssistantMemberKey(1, r["assistant_id"], r["member_id"])
            for r in conn.execute(
                """SELECT assistant_id, member_id FROM dws.assistant_member
                   WHERE site_id = 1 ORDER BY services DESC LIMIT 10"""
            )
        ]
    run = RunInfo(provider="offline", trigger="manual", force=False, dagster_run_id=None)
    verdicts: dict[str, list[dict]] = {}
    with LLMService(load_settings(database_url=demo_venue)) as llm:
        assert llm.provider == "offline"
        for app_name, keys in [*((a, members) for a in MEMBER_CHAIN), *((a, pairs) for a in PAIR_CHAIN)]:
            for outcome in answering.iter_answers(
                llm, demo_venue, _asks(demo_venue, app_name, keys), run, concurrency=4
            ):
                assert outcome.answer is not None, outcome.reason
                verdicts.setdefault(app_name, []).append(outcome.answer.grounding)
    assert set(verdicts) == {*MEMBER_CHAIN, *PAIR_CHAIN}
    ungrounded = [(app, v["ungrounded"]) for app, vs in verdicts.items() for v in vs if not v["grounded"]]
    assert ungrounded == []
    assert all(sum(v["numbers"] for v in vs) > 0 for app, vs in verdicts.items() if app != "app5_tactics"), {
        app: sum(v["numbers"] for v in vs) for app, vs in verdicts.items()
    }
