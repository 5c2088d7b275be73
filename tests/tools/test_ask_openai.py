"""``zqyy ask`` through the OpenAI-compatible provider: the real ``openai`` SDK against the fake
OpenAI-compatible server, on the AI tests' venue in a real database; and through the fallback."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.defs.ai.venue import load_ai_venue
from tests.tools.helpers import run
from tests.tools.test_ask import cache_rows, ledger
from zqyy_assets.core import db
from zqyy_assets.core.apps import system_prompt
from zqyy_assets.testing.fake_openai import FAKE_API_KEY, FakeOpenAI


@pytest.fixture
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def venue(db_url: str, openai_fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> str:
    """The AI venue, and the environment of a venue on an OpenAI-compatible server (the fake's)."""
    with db.transaction(db_url) as conn:
        load_ai_venue(conn)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("DASHSCOPE_API_KEY", raising=False)
    monkeypatch.setenv("ZQYY_LLM_PROVIDER", "openai")
    monkeypatch.setenv("OPENAI_BASE_URL", openai_fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_API_KEY)
    monkeypatch.setenv("ZQYY_LLM_MODEL", "qwen-plus")
    monkeypatch.setenv("ZQYY_LLM_MODEL_APP3_CLUE", "qwen3-32b")
    monkeypatch.setenv("ZQYY_LLM_MAX_ATTEMPTS", "1")
    return db_url


def test_ask_through_an_openai_compatible_model(
    venue: str, openai_fake: FakeOpenAI, capsys: pytest.CaptureFixture[str]
) -> None:
    openai_fake.script("app3_clue", tokens=(800, 200))

    assert run(["ask", "app3_clue", "--site", "1", "--target", "100"]) == 0

    out, err = capsys.readouterr()
    [row] = ledger(venue)
    [cached] = cache_rows(venue, "app3_clue")
    [received] = openai_fake.requests("app3_clue")
    assert received["model"] == "qwen3-32b" and received["system"] == system_prompt("app3_clue")
    assert json.loads(out) == cached["result_json"]
    assert (row["provider"], row["model"], row["tokens_in"], row["tokens_out"]) == ("openai", "qwen3-32b", 800, 200)
    assert f"ledger #{row['id']}: success, provider openai, model qwen3-32b, tokens 800 in / 200 out" in err
    assert cached["provider"] == "openai" and cached["prompt_version"].startswith("openai/qwen3-32b:")

    assert run(["ask", "app3_clue", "--site", "1", "--target", "100"]) == 0
    assert "memoization answered" in capsys.readouterr().err and openai_fake.count() == 1


def test_ask_names_the_fallback_that_answered(
    venue: str, openai_fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ZQYY_LLM_FALLBACK_PROVIDER", "offline")
    openai_fake.script("app6_note", ["error:404:model_not_found"])

    assert run(["ask", "app6_note", "--site", "1", "--target", "100"]) == 0

    out, err = capsys.readouterr()
    failed, answered = ledger(venue)
    assert f"ledger #{failed['id']}: failed, error model_not_found, provider openai, model qwen-plus" in err
    assert f"ledger #{answered['id']}: success, provider offline (fallback for openai)" in err
    assert json.loads(out)["_provider"] == "offline"
