"""The ``zqyy`` command end to end: argv in, exit code and output out, on a real database.

Commands run in-process through ``zqyy_assets.tools.cli.main`` (DATABASE_URL set for them);
one runs as a child process, as a shell would start it.
"""

from __future__ import annotations

import importlib
import os
import re
import socket
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from psycopg import sql

from tests.tools.helpers import ods_counts, ods_digests, run, scratch_db
from zqyy_assets.core import db, tokens
from zqyy_assets.tools.cli import main

PROJECT_ROOT = Path(__file__).resolve().parents[2]
END = date(2025, 6, 30)


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port  # nothing listens on it once the socket is closed


@pytest.fixture(autouse=True)
def unreachable_database(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> str:
    """Unless a test says otherwise, DATABASE_URL names no server: a command that should have
    stopped at its arguments can never reach (or start) the embedded demo server."""
    url = f"postgresql://zqyy@127.0.0.1:{closed_port}/zqyy?connect_timeout=5"
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture
def database(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh migrated database that the commands use (DATABASE_URL)."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    return db_url


@pytest.fixture
def venue(database: str, capsys: pytest.CaptureFixture[str]) -> str:
    """One demo site x 2 days, written by ``zqyy demo-generate``."""
    assert run(["demo-generate", "--sites", "1", "--days", "2", "--end-date", END.isoformat(), "--no-progress"]) == 0
    capsys.readouterr()
    return database


def _one(url: str, query: str) -> dict:
    with db.connect(url) as conn:
        return conn.execute(query).fetchone()


# --------------------------------------------------------------------------- the console script


def test_the_console_script_names_this_main() -> None:
    target = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["scripts"]["zqyy"]
    module, _, function = target.partition(":")
    assert getattr(importlib.import_module(module), function) is main


def test_db_up_print_env_in_a_child_process(db_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url}
    done = subprocess.run(
        [sys.executable, "-m", "zqyy_assets.tools.cli", "db-up", "--print-env"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"export DATABASE_URL='{db_url}'",
        f"export DAGSTER_PG_URL='{db.dagster_storage_url(db_url)}'",
    ]


def test_db_up_creates_and_migrates_a_missing_database(
    pg_server_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"zqyy_t_dbup_{uuid.uuid4().hex[:8]}"
    url = db.with_database(pg_server_url, name)
    monkeypatch.setenv("DATABASE_URL", url)
    try:
        assert run(["db-up"]) == 0
        assert "database ready" in capsys.readouterr().err
        assert _one(url, "SELECT to_regclass('ods.sites') IS NOT NULL AS ok")["ok"]
        assert run(["db-up"]) == 0
        assert "migrations applied now: none" in capsys.readouterr().err
    finally:
        with db.connect(db.with_database(pg_server_url, "postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# --------------------------------------------------------------------------- ODS data


def test_demo_generate_writes_a_small_venue_and_refuses_to_overwrite_it(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["demo-generate", "--sites", "1", "--days", "2", "--end-date", END.isoformat(), "--no-progress"]
    assert run(args) == 0
    printed = dict(line.split() for line in capsys.readouterr().out.splitlines())
    counts = ods_counts(database)
    assert {table: int(n.replace(",", "")) for table, n in printed.items()} == counts
    assert counts["sites"] == 1 and counts["settlements"] > 50
    dates = _one(
        database,
        "SELECT min(dws.business_date(settled_at, 'Asia/Shanghai', 6)) AS first,"
        " max(dws.business_date(settled_at, 'Asia/Shanghai', 6)) AS last FROM ods.settlements",
    )
    assert (dates["first"], dates["last"]) == (date(2025, 6, 29), END)

    assert run(args) == 1
    err = capsys.readouterr().err
    assert "already has site(s) 1" in err and "--replace" in err
    assert ods_counts(database) == counts

    assert run([*args, "--replace", "--seed", "43"]) == 0
    assert ods_counts(database)["sites"] == 1


def test_export_then_import_reproduces_the_rows(
    venue: str,
    pg_server_url: str,
    template_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "csv"
    assert run(["export-csv", str(out)]) == 0
    exported = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.csv" for t in ods_counts(venue))

    with scratch_db(pg_server_url, template_db) as target:
        monkeypatch.setenv("DATABASE_URL", target)
        assert run(["import-csv", str(out)]) == 0
        assert capsys.readouterr().out == exported  # the same table counts
        assert ods_digests(target) == ods_digests(venue)

        assert run(["import-csv", str(out)]) == 1  # the rows are there already: nothing loads
        err = capsys.readouterr().err
        assert "import rejected, nothing was loaded" in err and "already exists in ods.sites" in err
        assert ods_digests(target) == ods_digests(venue)


def test_export_of_one_site(venue: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["export-csv", str(tmp_path / "none"), "--site", "2"]) == 0
    assert all(line.split()[1] == "0" for line in capsys.readouterr().out.splitlines())
    assert run(["export-csv", str(tmp_path / "one"), "--site", "1"]) == 0
    assert dict(line.split() for line in capsys.readouterr().out.splitlines())["sites"] == "1"


# --------------------------------------------------------------------------- live traffic


def test_live_traffic_adds_rows_with_their_events(venue: str, capsys: pytest.CaptureFixture[str]) -> None:
    live = ("ods.settlements", "ods.notes", "ods.tasks")
    query = " + ".join(f"(SELECT count(*) FROM {t})" for t in live)
    before = _one(venue, f"SELECT {query} AS n")["n"]
    events_before = _one(venue, "SELECT count(*) AS n FROM biz.ai_events")["n"]

    # 6000 a minute for 0.001 minutes: six events, 10 ms apart (this seed gives every kind).
    assert run(["live-traffic", "--rate", "6000", "--minutes", "0.001", "--seed", "1"]) == 0

    out = capsys.readouterr().out
    assert "[live] 6 events" in out
    added = re.search(r"\[live\] added (.+)", out)
    assert added is not None
    kinds = {kind: int(n) for kind, n in (part.split() for part in added.group(1).split(", "))}
    assert set(kinds) == {"settlement", "note", "task"} and sum(kinds.values()) == 6
    assert _one(venue, f"SELECT {query} AS n")["n"] == before + 6
    walk_ins = out.count("walk-in (no event)")
    assert _one(venue, "SELECT count(*) AS n FROM biz.ai_events")["n"] == events_before + 6 - walk_ins


def test_live_traffic_without_a_venue_says_what_to_do(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["live-traffic", "--rate", "60", "--minutes", "0.1"]) == 1
    assert "no active site with members and tables" in capsys.readouterr().err


# --------------------------------------------------------------------------- tokens


def test_token_issue_list_revoke(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["token", "issue", "--subject", "王店长", "--role", "admin", "--site", "1", "--site", "2"]) == 0
    issued = capsys.readouterr()
    token = issued.out.strip()
    assert token.startswith("zqyy_") and "王店长" in issued.err and "shown only now" in issued.err

    assert run(["token", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 1
    assert token not in listed[0]  # only a prefix is kept
    token_id, prefix, state = listed[0].split()[:3]
    assert token.startswith(prefix.removesuffix("...")) and state == "active" and "sites=1,2" in listed[0]

    assert run(["token", "revoke", "--token", token]) == 0
    assert "revoked" in capsys.readouterr().err
    assert run(["token", "list"]) == 0
    assert capsys.readouterr().out.split()[2] == "revoked"
    assert run(["token", "revoke", token_id]) == 1
    assert "no active token matched" in capsys.readouterr().err


def test_token_issue_with_a_nickname(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["token", "issue", "--subject", "1024", "--role", "staff", "--site", "1", "--nickname", " 小王 "]
    assert run(argv) == 0
    token = capsys.readouterr().out.strip()
    assert run(["token", "list"]) == 0
    assert "[小王]" in capsys.readouterr().out
    with db.connect(database) as conn:
        row = conn.execute(tokens.LOOKUP_SQL, (tokens.hash_token(token),)).fetchone()
    assert (row["subject"], row["nickname"]) == ("1024", "小王")


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: command"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["demo-generate", "--end-date", "2025-13-01"], "not a date (YYYY-MM-DD): '2025-13-01'"),
        (["demo-generate", "--sites", "0"], "--sites: must be at least 1"),
        (["demo-generate", "--days", "two"], "not a whole number: 'two'"),
        (["export-csv"], "the following arguments are required: DIR"),
        (["live-traffic", "--rate", "0"], "--rate: must be greater than 0"),
        (["token", "issue", "--subject", "x", "--role", "owner", "--site", "1"], "invalid choice: 'owner'"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: zqyy") and message in err


def test_import_of_a_missing_directory_names_it(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-dir"
    assert run(["import-csv", str(missing)]) == 1
    err = capsys.readouterr().err
    assert f"{missing}: not a directory" in err and "nothing was loaded" in err


def test_revoke_needs_an_id_or_a_token(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["token", "revoke"]) == 2
    assert "give a token id or --token" in capsys.readouterr().err


def test_an_unreachable_database_is_reported_with_advice(
    unreachable_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["export-csv", str(tmp_path / "unused")]) == 1
    assert not (tmp_path / "unused").exists()
    err = capsys.readouterr().err
    assert "cannot connect to the database" in err and "zqyy db-up" in err


def test_an_unmigrated_database_is_reported_with_advice(
    pg_server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db.with_database(pg_server_url, "postgres"))  # no ODS schema there
    assert run(["import-csv", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "the ODS schema is missing" in err and "zqyy db-up" in err
