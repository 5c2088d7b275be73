"""CSV import of the ODS tables: good sets load (and round-trip), bad files load nothing."""

from __future__ import annotations

import argparse
import csv
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.tools.helpers import ods_counts, ods_digests, scratch_db
from zqyy_assets.core import db
from zqyy_assets.core.ods_tables import ODS_TABLES
from zqyy_assets.tools import ods_commands as commands
from zqyy_assets.tools.csv_io import CsvImportError, export_csv, import_csv
from zqyy_assets.tools.demo_venue import generate_demo_venue

GOOD = Path(__file__).parent / "fixtures" / "good"


def zqyy_main(argv: list[str]) -> None:
    """The ``zqyy`` parser with only this module's subcommands (as cli.build_parser registers them)."""
    parser = argparse.ArgumentParser(prog="zqyy")
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    args.func(args)


EMPTY = dict.fromkeys(ODS_TABLES, 0)


@pytest.fixture(scope="module")
def empty_db(pg_server_url: str, template_db: str) -> Iterator[str]:
    """One database for the rejection cases: each asserts it is still empty afterwards."""
    with scratch_db(pg_server_url, template_db) as url:
        yield url


@pytest.fixture
def good_dir(tmp_path: Path) -> Path:
    target = tmp_path / "import"
    shutil.copytree(GOOD, target)
    return target


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def _write(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


def _set(file: str, row: int, column: str, value: str) -> Callable[[Path], None]:
    """Edit one cell: ``row`` is the 1-based data row, as the import reports it."""

    def edit(directory: Path) -> None:
        rows = _rows(directory / file)
        rows[row][rows[0].index(column)] = value
        _write(directory / file, rows)

    return edit


def _drop_column(file: str, column: str) -> Callable[[Path], None]:
    def edit(directory: Path) -> None:
        rows = _rows(directory / file)
        i = rows[0].index(column)
        _write(directory / file, [r[:i] + r[i + 1 :] for r in rows])

    return edit


def _rename_column(file: str, column: str, new: str) -> Callable[[Path], None]:
    return lambda directory: _set(file, 0, column, new)(directory)


def _add_file(name: str, text: str) -> Callable[[Path], None]:
    return lambda directory: (directory / name).write_text(text, encoding="utf-8")


def _gbk_notes(directory: Path) -> None:
    """What Excel saves by default on a Chinese Windows: GBK, not UTF-8."""
    (directory / "notes.csv").write_bytes((directory / "notes.csv").read_text(encoding="utf-8").encode("gbk"))


# --- good files -------------------------------------------------------------------------------------


def test_good_set_loads_with_defaults_and_local_time(db_url: str, good_dir: Path) -> None:
    counts = import_csv(db_url, good_dir)
    expected = {
        "sites": 1,
        "areas": 2,
        "tables": 3,
        "members": 3,
        "assistants": 2,
        "settlements": 4,
        "assistant_services": 2,
        "recharges": 2,
        "notes": 2,
        "tasks": 2,
    }
    assert counts == expected
    assert ods_counts(db_url) == expected
    with db.connect(db_url) as conn:
        s = {r["settlement_id"]: r for r in conn.execute("SELECT * FROM ods.settlements")}
        m = {r["member_id"]: r for r in conn.execute("SELECT * FROM ods.members")}
        notes = {r["note_id"]: r for r in conn.execute("SELECT * FROM ods.notes")}
        tasks = {r["task_id"]: r for r in conn.execute("SELECT * FROM ods.tasks")}
        bonus = conn.execute("SELECT bonus FROM ods.recharges WHERE recharge_id = 302").fetchone()["bonus"]
    # A timestamp without offset is Asia/Shanghai local time; 'Z' and '+08:00' are honoured.
    assert s[102]["started_at"] == datetime(2025, 3, 1, 13, 30, tzinfo=UTC)
    assert s[101]["started_at"] == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert s[104]["started_at"] == datetime(2025, 3, 2, 13, 45, tzinfo=UTC)
    assert s[102]["member_id"] is None and s[103]["total"] == Decimal("304.80")
    # Absent column and empty cells take the database defaults.
    assert m[11]["gender"] == "" and m[12]["level"] == "普通" and m[13]["phone"] == ""
    assert bonus == 0
    assert notes[402]["assistant_id"] is None and notes[402]["content"] == "生日是5月3日, 记得准备小礼物"
    assert tasks[502]["status"] == "assigned" and tasks[502]["due_at"] is None


def test_generated_venue_round_trips_through_csv(
    db_url: str, pg_server_url: str, template_db: str, tmp_path: Path
) -> None:
    generate_demo_venue(db_url, sites=2, days=4, seed=3, end_date=date(2025, 6, 30), show_progress=False)
    exported = export_csv(db_url, tmp_path / "all")
    assert exported == ods_counts(db_url)
    only_two = export_csv(db_url, tmp_path / "site2", site_ids=[2])
    assert only_two["sites"] == 1 and 0 < only_two["settlements"] < exported["settlements"]

    with scratch_db(pg_server_url, template_db) as target:
        assert import_csv(target, tmp_path / "all") == exported
        assert ods_digests(target) == ods_digests(db_url)


def test_import_adds_to_existing_sites(db_url: str, good_dir: Path, tmp_path: Path) -> None:
    import_csv(db_url, good_dir)
    more = tmp_path / "more"
    more.mkdir()
    awkward = '第一行\n第二行\t"引号"\\反斜杠, 逗号'  # quoted CSV field with a line break inside
    _write(
        more / "notes.csv",
        [
            ["site_id", "note_id", "member_id", "assistant_id", "content", "created_at"],
            ["901", "403", "13", "22", awkward, "2025-03-03 20:00"],
        ],
    )
    (more / "tasks.csv").write_text("site_id,task_id,member_id,assistant_id,task_type,assigned_at\n", encoding="utf-8")
    assert import_csv(db_url, more) == {"notes": 1, "tasks": 0}
    assert ods_counts(db_url)["notes"] == 3
    with db.connect(db_url) as conn:
        assert conn.execute("SELECT content FROM ods.notes WHERE note_id = 403").fetchone()["content"] == awkward


# --- bad files ---------------------------------------------------------------------------------------

BAD_CASES = {
    # name: (edit, file, row, column, words in the message)
    "missing column": (_drop_column("settlements.csv", "table_fee"), "settlements.csv", 0, "table_fee", "missing"),
    "unknown column": (_rename_column("tasks.csv", "status", "state"), "tasks.csv", 0, "state", "unknown column"),
    "non-numeric money": (_set("settlements.csv", 2, "total", "62元"), "settlements.csv", 2, "total", "money"),
    "three decimals": (
        _set("tables.csv", 1, "price_per_minute", "0.605"),
        "tables.csv",
        1,
        "price_per_minute",
        "money",
    ),
    "bad timestamp": (
        _set("members.csv", 3, "registered_at", "2025-02-30 12:00"),
        "members.csv",
        3,
        "registered_at",
        "date",
    ),
    "not a timestamp": (_set("notes.csv", 1, "created_at", "yesterday"), "notes.csv", 1, "created_at", "ISO 8601"),
    "bad integer": (
        _set("settlements.csv", 1, "table_minutes", "100.5"),
        "settlements.csv",
        1,
        "table_minutes",
        "integer",
    ),
    "empty required": (_set("assistants.csv", 2, "name", ""), "assistants.csv", 2, "name", "required"),
    "bad date": (_set("sites.csv", 1, "opened_on", "2020/05/01"), "sites.csv", 1, "opened_on", "date"),
    "bad boolean": (_set("assistants.csv", 1, "is_active", "maybe"), "assistants.csv", 1, "is_active", "boolean"),
    "unknown site": (_set("notes.csv", 2, "site_id", "999"), "notes.csv", 2, "site_id", "unknown site"),
    "unknown area": (_set("tables.csv", 3, "area_code", "snooker"), "tables.csv", 3, "area_code", "unknown area"),
    "not an area code": (_set("areas.csv", 2, "area_code", "hallD"), "areas.csv", 2, "area_code", "not one of"),
    "unknown member": (_set("recharges.csv", 2, "member_id", "99"), "recharges.csv", 2, "member_id", "unknown member"),
    "unknown table": (_set("settlements.csv", 4, "table_id", "7"), "settlements.csv", 4, "table_id", "unknown table"),
    "unknown settlement": (
        _set("assistant_services.csv", 2, "settlement_id", "199"),
        "assistant_services.csv",
        2,
        "settlement_id",
        "unknown settlement",
    ),
    "duplicate key": (_set("members.csv", 3, "member_id", "12"), "members.csv", 3, "member_id", "duplicate"),
    "negative money": (
        _set("settlements.csv", 1, "goods_amount", "-16.00"),
        "settlements.csv",
        1,
        "goods_amount",
        "negative",
    ),
    "zero recharge": (_set("recharges.csv", 1, "amount", "0"), "recharges.csv", 1, "amount", "greater than 0"),
    "inconsistent total": (_set("settlements.csv", 1, "total", "150.00"), "settlements.csv", 1, "total", "148.00"),
    "table in another area": (
        _set("settlements.csv", 1, "area_code", "vip"),
        "settlements.csv",
        1,
        "area_code",
        "hallA",
    ),
    "ends before it starts": (
        _set("settlements.csv", 2, "ended_at", "2025-03-01 21:00:00"),
        "settlements.csv",
        2,
        "ended_at",
        "before",
    ),
    "not a task type": (_set("tasks.csv", 1, "task_type", "回电"), "tasks.csv", 1, "task_type", "not one of"),
    "not an ODS table": (_add_file("payments.csv", "site_id\n901\n"), "payments.csv", None, None, "not an ODS table"),
    "empty file": (_add_file("notes.csv", ""), "notes.csv", None, None, "empty"),
    "not UTF-8": (_gbk_notes, "notes.csv", None, None, "UTF-8"),
}


@pytest.mark.parametrize("case", BAD_CASES, ids=list(BAD_CASES))
def test_bad_file_is_rejected_and_nothing_loads(empty_db: str, good_dir: Path, case: str) -> None:
    db_url = empty_db
    assert ods_counts(db_url) == EMPTY
    edit, file, row, column, words = BAD_CASES[case]
    edit(good_dir)
    with pytest.raises(CsvImportError) as caught:
        import_csv(db_url, good_dir)
    err = caught.value
    assert (err.file, err.row, err.column) == (file, row, column), err.problems
    assert words in err.message
    text = str(err)
    assert file in text
    if row:
        assert f"row {row}" in text
    if column:
        assert f"'{column}'" in text
    # All or nothing: the good files of the same import were not loaded either.
    assert ods_counts(db_url) == EMPTY


def test_key_already_in_database_is_rejected(db_url: str, good_dir: Path, tmp_path: Path) -> None:
    import_csv(db_url, good_dir)
    before = ods_digests(db_url)
    again = tmp_path / "again"
    again.mkdir()
    (again / "notes.csv").write_text(
        "site_id,note_id,member_id,assistant_id,content,created_at\n"
        "901,403,13,22,喜欢喝红牛,2025-03-03 20:00\n"
        "901,401,11,21,重复的备注,2025-03-03 20:00\n",
        encoding="utf-8",
    )
    with pytest.raises(CsvImportError) as caught:
        import_csv(db_url, again)
    assert (caught.value.file, caught.value.row, caught.value.column) == ("notes.csv", 2, "note_id")
    assert "already exists" in caught.value.message
    assert ods_digests(db_url) == before


def test_unknown_site_in_neither_db_nor_import(empty_db: str, tmp_path: Path) -> None:
    db_url = empty_db
    d = tmp_path / "areas_only"
    d.mkdir()
    (d / "areas.csv").write_text("site_id,area_code,name\n5,hallA,A区大厅\n", encoding="utf-8")
    with pytest.raises(CsvImportError) as caught:
        import_csv(db_url, d)
    assert (caught.value.file, caught.value.row, caught.value.column) == ("areas.csv", 1, "site_id")
    assert "ods.sites" in caught.value.message and "sites.csv" in caught.value.message


def test_all_problems_are_listed(empty_db: str, good_dir: Path) -> None:
    db_url = empty_db
    _set("members.csv", 1, "registered_at", "soon")(good_dir)
    _set("settlements.csv", 3, "total", "abc")(good_dir)
    with pytest.raises(CsvImportError) as caught:
        import_csv(db_url, good_dir)
    where = [(p.file, p.row, p.column) for p in caught.value.problems]
    assert where == [("members.csv", 1, "registered_at"), ("settlements.csv", 3, "total")]


def test_cli_import_reports_and_exits_non_zero(
    db_url: str, good_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    _set("settlements.csv", 2, "total", "62元")(good_dir)
    with pytest.raises(SystemExit) as exit_info:
        zqyy_main(["import-csv", str(good_dir)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "nothing was loaded" in err and "settlements.csv, row 2, column 'total'" in err
    assert ods_counts(db_url) == EMPTY

    _set("settlements.csv", 2, "total", "62.00")(good_dir)
    zqyy_main(["import-csv", str(good_dir)])
    assert "settlements" in capsys.readouterr().out
    assert ods_counts(db_url)["settlements"] == 4


def test_cli_demo_generate_and_export(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    args = ["demo-generate", "--sites", "1", "--days", "2", "--seed", "1", "--end-date", "2025-05-02", "--no-progress"]
    zqyy_main(args)
    assert ods_counts(db_url)["settlements"] > 0
    with pytest.raises(SystemExit) as exit_info:
        zqyy_main(args)
    assert exit_info.value.code == 1 and "--replace" in capsys.readouterr().err
    zqyy_main([*args, "--replace"])
    zqyy_main(["export-csv", str(tmp_path / "out")])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{t}.csv" for t in ODS_TABLES)


def test_times_without_an_offset_are_read_in_the_venue_timezone(pg_server_url: str, template_db: str) -> None:
    # Settlement 102 has a naive time; 101 carries +08:00 and must not move.
    settled: dict[str, dict[int, datetime]] = {}
    for zone in ("Asia/Shanghai", "Europe/London"):
        with scratch_db(pg_server_url, template_db) as url:
            import_csv(url, GOOD, timezone=zone)
            with db.connect(url) as conn:
                rows = conn.execute("SELECT settlement_id, settled_at FROM ods.settlements").fetchall()
            settled[zone] = {r["settlement_id"]: r["settled_at"] for r in rows}
    assert settled["Asia/Shanghai"][101] == settled["Europe/London"][101]
    # London is 8 hours behind Shanghai in March (before British summer time).
    assert (settled["Europe/London"][102] - settled["Asia/Shanghai"][102]).total_seconds() == 8 * 3600
