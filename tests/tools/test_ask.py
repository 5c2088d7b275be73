"""``zqyy ask``: one app, one target, through the real ``dashscope`` SDK against the fake DashScope
(or the offline analyst), on the AI tests' venue in a real database."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.defs.ai.venue import load_ai_venue
from tests.tools.helpers import run
from zqyy_assets.core import db
from zqyy_assets.core.apps import APP_NAMES
from zqyy_assets.testing.fake_dashscope import DEFAULT_MODEL, FAKE_API_KEY, FakeDashScope


@pytest.fixture
def fake() -> Iterator[FakeDashScope]:
    with FakeDashScope() as server:
        yield server


@pytest.fixture
def venue(db_url: str, fake: FakeDashScope, monkeypatch: pytest.MonkeyPatch) -> str:
    """The AI venue, and the environment of a venue with a DashScope key (the fake's)."""
    with db.transaction(db_url) as conn:
        load_ai_venue(conn)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ZQYY_LLM_PROVIDER", "auto")
    monkeypatch.setenv("DASHSCOPE_API_KEY", FAKE_API_KEY)
    monkeypatch.setenv("DASHSCOPE_BASE_URL", fake.base_url)
    for name in APP_NAMES:
        monkeypatch.setenv(f"DASHSCOPE_APP_ID_{name.upper()}", f"fake-{name}")
    monkeypatch.setenv("ZQYY_LLM_MAX_ATTEMPTS", "1")
    return db_url


def ledger(url: str) -> list[dict[str, Any]]:
    with db.connect(url) as conn:
        return conn.execute("SELECT * FROM biz.ai_call_ledger ORDER BY id").fetchall()


def cache_rows(url: str, app: str) -> list[dict[str, Any]]:
    with db.connect(url) as conn:
        return conn.execute("SELECT * FROM biz.ai_cache WHERE cache_type = %s ORDER BY id", (app,)).fetchall()


def test_ask_calls_the_app_prints_the_answer_and_ledger_line_and_caches_it(
    venue: str, fake: FakeDashScope, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.script("app3_clue", tokens=(1234, 321))

    assert run(["ask", "app3_clue", "--site", "1", "--target", "100"]) == 0

    out, err = capsys.readouterr()
    [row] = ledger(venue)
    [cached] = cache_rows(venue, "app3_clue")
    assert fake.count("app3_clue") == 1
    assert json.loads(out) == cached["result_json"]  # the answer as cached, with its references
    assert "_references" in cached["result_json"]
    assert re.search(r"[\u4e00-\u9fff]", out) and "\\u" not in out  # Chinese kept as is
    assert (row["status"], row["provider"], row["model"], row["target_id"]) == (
        "success",
        "dashscope",
        DEFAULT_MODEL,
        "100",
    )
    assert (row["tokens_in"], row["tokens_out"]) == (1234, 321)
    assert (
        f"ledger #{row['id']}: success, provider dashscope, model {DEFAULT_MODEL}, tokens 1234 in / 321 out, "
        f"cost {float(row['cost_cny']):.6f} CNY, latency {row['latency_ms']} ms"
    ) in err
    assert float(row["cost_cny"]) > 0
    assert f"cached as answer #{cached['id']}" in err
    assert (cached["site_id"], cached["target_id"], cached["provider"]) == (1, "100", "dashscope")


def test_a_second_ask_is_answered_by_memoization_and_force_asks_again(
    venue: str, fake: FakeDashScope, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["ask", "app4_analysis", "--site", "1", "--target", "7_100"]) == 0
    first = capsys.readouterr().out
    [cached] = cache_rows(venue, "app4_analysis")

    assert run(["ask", "app4_analysis", "--site", "1", "--target", "7_100"]) == 0
    out, err = capsys.readouterr()
    assert out == first
    assert f"memoization answered: cached answer #{cached['id']}" in err and "no call made" in err
    assert "ledger #" not in err
    assert len(ledger(venue)) == 1 and fake.count("app4_analysis") == 1
    assert len(cache_rows(venue, "app4_analysis")) == 1

    assert run(["ask", "app4_analysis", "--site", "1", "--target", "7_100", "--force"]) == 0
    err = capsys.readouterr().err
    rows = ledger(venue)
    assert len(rows) == 2 and fake.count("app4_analysis") == 2
    assert f"ledger #{rows[1]['id']}: success" in err and "memoization" not in err
    assert len(cache_rows(venue, "app4_analysis")) == 2


@pytest.mark.parametrize(
    ("app", "target", "target_id"),
    [
        ("app2_finance", "all|this_month", "this_month__all"),
        ("app2a_finance_area", "this_month__hallA", "this_month__hallA"),  # the cache id works too
    ],
)
def test_app2_targets(
    venue: str, fake: FakeDashScope, capsys: pytest.CaptureFixture[str], app: str, target: str, target_id: str
) -> None:
    assert run(["ask", app, "--site", "1", "--target", target]) == 0
    [cached] = cache_rows(venue, app)
    assert cached["target_id"] == target_id
    assert json.loads(capsys.readouterr().out) == cached["result_json"]
    assert fake.count(app) == 1


def test_an_answer_with_an_invented_figure_is_stored_but_not_served_and_said_so(
    venue: str, fake: FakeDashScope, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.script("app2_finance", answer={"insights": [{"title": "营业额", "content": "本月营业额 ¥987,654.32。"}]})
    assert run(["ask", "app2_finance", "--site", "1", "--target", "all|this_month"]) == 0
    [cached] = cache_rows(venue, "app2_finance")
    assert cached["status"] == "ungrounded"
    assert (
        "ungrounded numbers (1 of 1), stored as ungrounded, not served: "
        "¥987,654.32 (insights.0.content: 本月营业额 ¥987,654.32。)" in capsys.readouterr().err
    )


def test_without_a_key_the_offline_analyst_answers(
    venue: str, fake: FakeDashScope, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    assert run(["ask", "app6_note", "--site", "1", "--target", "100"]) == 0
    err = capsys.readouterr().err
    [row] = ledger(venue)
    assert row["provider"] == "offline" and f"ledger #{row['id']}: success, provider offline" in err
    assert cache_rows(venue, "app6_note")[0]["provider"] == "offline"
    assert fake.count() == 0


def test_a_failed_call_exits_1_naming_it(venue: str, fake: FakeDashScope, capsys: pytest.CaptureFixture[str]) -> None:
    fake.script("app7_customer", ["401"])
    assert run(["ask", "app7_customer", "--site", "1", "--target", "100"]) == 1
    err = capsys.readouterr().err
    [row] = ledger(venue)
    assert f"ledger #{row['id']}: failed" in err and "zqyy ask: app7_customer 100 failed" in err
    assert cache_rows(venue, "app7_customer") == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["app9_magic", "--site", "1", "--target", "100"], "unknown app 'app9_magic'"),
        (["app1_chat", "--site", "1", "--target", "100"], "unknown app 'app1_chat'"),
        (["app3_clue", "--site", "99", "--target", "100"], "site 99 has no data"),
        (["app3_clue", "--site", "3", "--target", "100"], "site 3 is not an active site"),
        (["app3_clue", "--site", "1", "--target", "1-100"], "bad target '1-100' for app3_clue"),
        (["app4_analysis", "--site", "1", "--target", "100"], "bad target '100' for app4_analysis"),
        (["app2_finance", "--site", "1", "--target", "all|someday"], "bad target 'all|someday' for app2_finance"),
        (["app2_finance", "--site", "1", "--target", "nowhere|this_month"], "unknown area 'nowhere'"),
        (["app2a_finance_area", "--site", "1", "--target", "all|this_month"], "is answered by app2_finance"),
        (["app3_clue", "--site", "1", "--target", "999"], "member 999 does not exist at site 1"),
        (["app6_note", "--site", "1", "--target", "101"], "nothing to ask app6_note about target '101'"),
        (["app5_tactics", "--site", "1", "--target", "7_100"], "App4 has no analysis of the pair yet"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_it(
    venue: str, fake: FakeDashScope, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert run(["ask", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("zqyy ask: ") and err.count("\n") == 1 and message in err
    assert ledger(venue) == [] and fake.count() == 0


def test_a_site_without_finance_figures_has_nothing_for_app2(venue: str, capsys: pytest.CaptureFixture[str]) -> None:
    with db.transaction(venue) as conn:
        conn.execute("INSERT INTO ods.sites (site_id, name) VALUES (4, '新门店')")
    assert run(["ask", "app2_finance", "--site", "4", "--target", "all|this_month"]) == 2
    assert "site 4 has no DWS finance figures" in capsys.readouterr().err


def test_help_states_the_target_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["ask", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for fragment in ("the member id", "<assistant_id>_<member_id>", "<area>|<time_dimension>", "--force"):
        assert fragment in text
