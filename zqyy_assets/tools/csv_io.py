"""Import (and export) of the ODS tables as CSV: one file per table, all-or-nothing.

Format
------
- A directory holds ``<table>.csv`` per ODS table (``sites.csv``, ``areas.csv``, ``tables.csv``,
  ``members.csv``, ``assistants.csv``, ``settlements.csv``, ``assistant_services.csv``,
  ``recharges.csv``, ``notes.csv``, ``tasks.csv``); any subset may be present. UTF-8 (a BOM is
  fine), comma separated, a header row naming the columns in any order.
- Columns that are nullable or have a database default may be left out of the header or left
  empty; every other column is required and may not be empty. Blank lines are skipped. An unknown column is an error
  (it is usually a typo of a column that would otherwise silently take its default).
- Money: a plain decimal with at most two decimals (``12``, ``12.5``, ``12.50``), never
  negative. Integers: plain digits. Booleans: true/false, t/f, 1/0, yes/no. Dates: YYYY-MM-DD.
- Timestamps: ISO 8601 (``2025-03-01T20:15:00+08:00``, ``2025-03-01 20:15:00+08``, ``...Z``).
  A timestamp without an offset is local time in Asia/Shanghai, the venues' time zone.

Errors
------
Every file is validated before anything is written: types, required values, allowed codes,
duplicate keys (within the file and against rows already in the database), references
(site, area, table, member, assistant, settlement: to rows in the database or in the same
import), negative money and settlement totals. Problems raise :class:`CsvImportError` naming
the file, the **data row** (1-based, the first row after the header is row 1; the header
itself is row 0) and the column. The load runs in one transaction, so a bad file leaves the
database exactly as it was, including the tables whose files were fine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from zqyy_assets.core import db
from zqyy_assets.core.business_date import DEFAULT_TIMEZONE

# ---------------------------------------------------------------------------------------------
# Table specs (mirror migration 0001_ods.sql)


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # int | int4 | text | money | timestamp | date | bool
    required: bool = True  # must appear in the header and may not be empty
    default: str | None = None  # value for an absent column / empty cell of an optional NOT NULL column
    choices: tuple[str, ...] | None = None
    positive: bool = False  # money that must be > 0 (otherwise >= 0)
    max_cents: int = 10**12  # numeric(12,2); numeric(8,2) columns say 10**8


@dataclass(frozen=True)
class Ref:
    columns: tuple[str, ...]  # in this table; the last one is the column named in errors
    parent: str
    parent_columns: tuple[str, ...]


@dataclass(frozen=True)
class TableSpec:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    refs: tuple[Ref, ...]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


AREA_CODES = ("hallA", "hallB", "hallC", "vip", "snooker", "mahjong", "ktv")

_SITE_REF = Ref(("site_id",), "sites", ("site_id",))


def _member_ref(col: str = "member_id") -> Ref:
    return Ref(("site_id", col), "members", ("site_id", "member_id"))


def _assistant_ref(col: str = "assistant_id") -> Ref:
    return Ref(("site_id", col), "assistants", ("site_id", "assistant_id"))


# In foreign-key order: a table only references tables before it.
TABLE_SPECS: tuple[TableSpec, ...] = (
    TableSpec(
        "sites",
        (
            Column("site_id", "int"),
            Column("name", "text"),
            Column("city", "text", required=False, default=""),
            Column("opened_on", "date", required=False),
            Column("is_active", "bool", required=False, default="true"),
        ),
        ("site_id",),
        (),
    ),
    TableSpec(
        "areas",
        (
            Column("site_id", "int"),
            Column("area_code", "text", choices=AREA_CODES),
            Column("name", "text"),
        ),
        ("site_id", "area_code"),
        (_SITE_REF,),
    ),
    TableSpec(
        "tables",
        (
            Column("site_id", "int"),
            Column("table_id", "int"),
            Column("area_code", "text", choices=AREA_CODES),
            Column("name", "text"),
            Column("price_per_minute", "money", max_cents=10**8),
        ),
        ("site_id", "table_id"),
        (_SITE_REF, Ref(("site_id", "area_code"), "areas", ("site_id", "area_code"))),
    ),
    TableSpec(
        "members",
        (
            Column("site_id", "int"),
            Column("member_id", "int"),
            Column("name", "text"),
            Column("phone", "text", required=False, default=""),
            Column("gender", "text", required=False, default=""),
            Column("level", "text", required=False, default="普通"),
            Column("registered_at", "timestamp"),
        ),
        ("site_id", "member_id"),
        (_SITE_REF,),
    ),
    TableSpec(
        "assistants",
        (
            Column("site_id", "int"),
            Column("assistant_id", "int"),
            Column("name", "text"),
            Column("level", "text", required=False, default="初级"),
            Column("fee_per_minute", "money", max_cents=10**8),
            Column("hired_on", "date", required=False),
            Column("is_active", "bool", required=False, default="true"),
        ),
        ("site_id", "assistant_id"),
        (_SITE_REF,),
    ),
    TableSpec(
        "settlements",
        (
            Column("site_id", "int"),
            Column("settlement_id", "int"),
            Column("member_id", "int", required=False),
            Column("area_code", "text", choices=AREA_CODES),
            Column("table_id", "int"),
            Column("started_at", "timestamp"),
            Column("ended_at", "timestamp"),
            Column("settled_at", "timestamp"),
            Column("table_minutes", "int4"),
            Column("table_fee", "money"),
            Column("assistant_fee", "money", required=False, default="0"),
            Column("goods_amount", "money", required=False, default="0"),
            Column("discount", "money", required=False, default="0"),
            Column("total", "money"),
            Column("pay_method", "text"),
        ),
        ("site_id", "settlement_id"),
        (
            _SITE_REF,
            Ref(("site_id", "area_code"), "areas", ("site_id", "area_code")),
            Ref(("site_id", "table_id"), "tables", ("site_id", "table_id")),
            _member_ref(),
        ),
    ),
    TableSpec(
        "assistant_services",
        (
            Column("site_id", "int"),
            Column("service_id", "int"),
            Column("settlement_id", "int"),
            Column("assistant_id", "int"),
            Column("member_id", "int", required=False),
            Column("started_at", "timestamp"),
            Column("ended_at", "timestamp"),
            Column("minutes", "int4"),
            Column("fee", "money"),
        ),
        ("site_id", "service_id"),
        (
            _SITE_REF,
            Ref(("site_id", "settlement_id"), "settlements", ("site_id", "settlement_id")),
            _assistant_ref(),
            _member_ref(),
        ),
    ),
    TableSpec(
        "recharges",
        (
            Column("site_id", "int"),
            Column("recharge_id", "int"),
            Column("member_id", "int"),
            Column("amount", "money", positive=True),
            Column("bonus", "money", required=False, default="0"),
            Column("pay_method", "text"),
            Column("recharged_at", "timestamp"),
        ),
        ("site_id", "recharge_id"),
        (_SITE_REF, _member_ref()),
    ),
    TableSpec(
        "notes",
        (
            Column("site_id", "int"),
            Column("note_id", "int"),
            Column("member_id", "int"),
            Column("assistant_id", "int", required=False),
            Column("content", "text"),
            Column("created_at", "timestamp"),
        ),
        ("site_id", "note_id"),
        (_SITE_REF, _member_ref(), _assistant_ref()),
    ),
    TableSpec(
        "tasks",
        (
            Column("site_id", "int"),
            Column("task_id", "int"),
            Column("member_id", "int"),
            Column("assistant_id", "int"),
            Column("task_type", "text", choices=("回访", "召回")),
            Column("status", "text", required=False, default="assigned", choices=("assigned", "done", "cancelled")),
            Column("assigned_at", "timestamp"),
            Column("due_at", "timestamp", required=False),
            Column("completed_at", "timestamp", required=False),
        ),
        ("site_id", "task_id"),
        (_SITE_REF, _member_ref(), _assistant_ref()),
    ),
)

SPECS: dict[str, TableSpec] = {s.name: s for s in TABLE_SPECS}
ODS_TABLES: tuple[str, ...] = tuple(SPECS)  # foreign-key order

# ---------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class CsvProblem:
    file: str
    row: int | None  # 1-based data row; 0 = the header; None = the file as a whole
    column: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append("header" if self.row == 0 else f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        return f"{', '.join(where)}: {self.message}"


class CsvImportError(Exception):
    """A CSV import was rejected; nothing was loaded.

    ``file``, ``row`` (1-based data row, 0 for the header, None for the whole file),
    ``column`` and ``message`` describe the first problem; ``problems`` lists all found.
    """

    def __init__(self, problems: Sequence[CsvProblem]):
        if not problems:
            raise ValueError("CsvImportError needs at least one problem")
        self.problems = list(problems)
        first = self.problems[0]
        self.file, self.row, self.column, self.message = first.file, first.row, first.column, first.message
        more = len(self.problems) - 1
        super().__init__(str(first) + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""))


_MAX_PROBLEMS = 50


class _Problems:
    def __init__(self) -> None:
        self.items: list[CsvProblem] = []

    def add(self, file: str, row: int | None, column: str | None, message: str) -> None:
        if len(self.items) < _MAX_PROBLEMS:
            self.items.append(CsvProblem(file, row, column, message))

    def bad_rows(self, file: str, column: str, mask: np.ndarray, values: Sequence, what: str) -> bool:
        """Report the first row where ``mask`` is true (and how many more); True if any."""
        idx = np.flatnonzero(mask)
        if idx.size == 0:
            return False
        first = int(idx[0])
        more = f" ({idx.size - 1} more row{'s' if idx.size > 2 else ''} in this column)" if idx.size > 1 else ""
        self.add(file, first + 1, column, f"{what}: {values[first]!r}{more}")
        return True


# ---------------------------------------------------------------------------------------------
# Parsing one file into typed columns

# ASCII digits only: [0-9], since \d also matches the digits of other scripts.
_INT_RE = r"[+-]?[0-9]{1,19}"
_MONEY_RE = r"[+-]?[0-9]{1,12}(?:\.[0-9]{1,2})?"
_TS_RE = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?"  # date and time
    r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)?"  # optional offset
)
_DATE_RE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}
_INT_LIMITS = {"int": (-(2**63), 2**63 - 1), "int4": (-(2**31), 2**31 - 1)}


@dataclass
class _Parsed:
    spec: TableSpec
    file: str
    values: dict[str, pd.Series]  # typed: Int64 ints and cents, datetime64[us, UTC], object dates/bools/text
    ok: bool  # every value parsed; only then do cross-row checks run on this table
    rows: int


def _read(path: Path, problems: _Problems) -> pd.DataFrame | None:
    try:
        # Everything as text: types are checked below so an error can name its row and column.
        return pd.read_csv(
            path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig", skip_blank_lines=True
        )
    except pd.errors.EmptyDataError:
        problems.add(path.name, None, None, "the file is empty (a header row is required)")
    except UnicodeDecodeError:
        problems.add(path.name, None, None, "not UTF-8 text (in Excel, save it as 'CSV UTF-8')")
    except pd.errors.ParserError as exc:
        problems.add(path.name, None, None, f"not a readable CSV file: {exc}")
    return None


def _parse_file(path: Path, spec: TableSpec, problems: _Problems) -> _Parsed | None:
    file = path.name
    df = _read(path, problems)
    if df is None:
        return None
    before = len(problems.items)
    df.columns = header = [str(c).strip() for c in df.columns]
    known = {c.name for c in spec.columns}
    seen: set[str] = set()
    for name in header:
        if re.fullmatch(r".*\.\d+", name) and name.rsplit(".", 1)[0] in seen:
            problems.add(file, 0, name.rsplit(".", 1)[0], "the column appears more than once in the header")
        elif name not in known:
            problems.add(file, 0, name, f"unknown column (expected some of: {', '.join(sorted(known))})")
        seen.add(name)
    for col in spec.columns:
        if col.required and col.name not in header:
            problems.add(file, 0, col.name, "required column is missing from the header")
    if len(problems.items) > before:
        return None

    values: dict[str, pd.Series] = {}
    ok = True
    for col in spec.columns:
        if col.name not in header:
            continue
        parsed = _parse_column(file, col, df[col.name], problems)
        if parsed is None:
            ok = False
        else:
            values[col.name] = parsed
    return _Parsed(spec, file, values, ok, len(df))


def _parse_column(file: str, col: Column, raw: pd.Series, problems: _Problems) -> pd.Series | None:
    """The column as typed values (Int64 for integers and cents, datetime64[us, UTC] for
    timestamps, objects otherwise; missing = NA), or None after reporting a problem."""
    values = raw.to_numpy(dtype=object)
    if col.kind != "text":
        values = np.array([v.strip() for v in values], dtype=object)
    empty = values == ""
    if col.required and problems.bad_rows(file, col.name, empty, values, "a value is required"):
        return None
    if col.default is not None:
        values = np.where(empty, col.default, values)
        empty = np.zeros(len(values), dtype=bool)
    filled = ~empty
    index = raw.index

    def bad(mask: np.ndarray, what: str) -> bool:
        return problems.bad_rows(file, col.name, filled & mask, values, what)

    if col.kind == "text":
        if col.choices is not None and bad(~np.isin(values, col.choices), f"not one of {', '.join(col.choices)}"):
            return None
        return pd.Series(np.where(filled, values, None), index=index, dtype=object)

    if col.kind in ("int", "int4"):
        if bad(_mismatches(values, filled, _INT_RE), "not an integer"):
            return None
        digits = np.where(filled, values, "0").tolist()
        try:
            ints = np.fromiter(map(int, digits), dtype=np.int64, count=len(digits))  # exact, not via float
        except OverflowError:
            ints = None
        lo, hi = _INT_LIMITS[col.kind]
        if ints is None:
            out = ~np.array([lo <= int(v) <= hi for v in digits], dtype=bool)
        else:
            out = (ints < lo) | (ints > hi)
        if bad(out, "integer out of range"):
            return None
        return pd.Series(pd.arrays.IntegerArray(ints, empty.copy()), index=index)

    if col.kind == "money":
        if bad(_mismatches(values, filled, _MONEY_RE), "not a money amount (a decimal with at most 2 decimals)"):
            return None
        if bad(np.array([v.startswith("-") for v in values], dtype=bool), "money may not be negative"):
            return None
        # At most 12 + 2 digits: exact in a float, and rint recovers the cents.
        amounts = np.fromiter(map(float, np.where(filled, values, "0").tolist()), dtype=float, count=len(values))
        cents = np.rint(amounts * 100).astype(np.int64)
        if col.positive and bad(cents == 0, "must be greater than 0"):
            return None
        if bad(cents >= col.max_cents, f"too large (at most {col.max_cents // 100 - 1}.99)"):
            return None
        return pd.Series(pd.arrays.IntegerArray(cents, empty.copy()), index=index)

    if col.kind == "timestamp":
        if bad(_mismatches(values, filled, _TS_RE), "not an ISO 8601 timestamp (e.g. 2025-03-01T20:15:00+08:00)"):
            return None
        # Validated shape: an offset, if any, is 'Z' or starts 3, 5 or 6 characters from the end.
        aware = filled & np.array([v[-1:] == "Z" or "+" in v[-6:] or "-" in v[-6:] for v in values], dtype=bool)
        naive = filled & ~aware
        text = pd.Series(values, index=index, dtype=object)
        result = pd.Series(pd.NaT, index=index, dtype="datetime64[us, UTC]")
        if aware.any():
            result[aware] = pd.to_datetime(text[aware], format="ISO8601", errors="coerce", utc=True).dt.as_unit("us")
        if naive.any():
            local = pd.to_datetime(text[naive], format="ISO8601", errors="coerce")
            local = local.dt.tz_localize(DEFAULT_TIMEZONE, ambiguous="NaT", nonexistent="NaT")
            result[naive] = local.dt.tz_convert("UTC").dt.as_unit("us")
        if bad(result.isna().to_numpy(), "not a valid date and time"):
            return None
        return result

    if col.kind == "date":
        shaped = ~_mismatches(values, filled, _DATE_RE)
        parsed = pd.to_datetime(pd.Series(np.where(filled & shaped, values, None)), format="%Y-%m-%d", errors="coerce")
        if bad(parsed.isna().to_numpy(), "not a date (YYYY-MM-DD)"):
            return None
        return pd.Series([d.date() if f else None for d, f in zip(parsed, filled)], index=index, dtype=object)

    if col.kind == "bool":
        low = [v.lower() for v in values]
        if bad(~np.isin(low, list(_TRUE | _FALSE)), "not a boolean (true/false)"):
            return None
        return pd.Series([(v in _TRUE) if f else None for v, f in zip(low, filled)], index=index, dtype=object)

    raise ValueError(f"unknown column kind {col.kind!r}")


def _mismatches(values: np.ndarray, filled: np.ndarray, pattern: str) -> np.ndarray:
    """Mask of filled values that do not fully match ``pattern``."""
    regex = re.compile(pattern)
    return filled & np.array([m is None for m in map(regex.fullmatch, values.tolist())], dtype=bool)


# ---------------------------------------------------------------------------------------------
# Cross-row and cross-table checks


def _key_tuples(values: dict[str, pd.Series], columns: Sequence[str]) -> list[tuple]:
    return list(zip(*(values[c].astype(object).where(values[c].notna(), None).tolist() for c in columns)))


class _DbKeys:
    """Keys already in the database for the sites this import touches (read once per table)."""

    def __init__(self, conn: psycopg.Connection, site_ids: list[int]):
        self.conn, self.site_ids = conn, site_ids
        self._cache: dict[tuple[str, tuple[str, ...]], set[tuple]] = {}

    def get(self, table: str, columns: tuple[str, ...]) -> set[tuple]:
        if (table, columns) not in self._cache:
            query = sql.SQL("SELECT {cols} FROM {table} WHERE site_id = ANY(%s)").format(
                cols=sql.SQL(", ").join(map(sql.Identifier, columns)), table=sql.Identifier("ods", table)
            )
            with self.conn.cursor(row_factory=psycopg.rows.tuple_row) as cur:
                self._cache[(table, columns)] = set(cur.execute(query, (self.site_ids,)).fetchall())
        return self._cache[(table, columns)]


def _fmt_key(columns: Sequence[str], key: tuple) -> str:
    return ", ".join(f"{c}={v}" for c, v in zip(columns, key))


def _check_keys(p: _Parsed, dbkeys: _DbKeys, problems: _Problems) -> set[tuple]:
    """Duplicate keys within the file or against the database; returns the file's keys."""
    key = p.spec.key
    keys = _key_tuples(p.values, key)
    first_row: dict[tuple, int] = {}
    existing = dbkeys.get(p.spec.name, key)
    reported_dup = reported_db = False
    for i, k in enumerate(keys):
        if k in first_row:
            if not reported_dup:
                problems.add(
                    p.file, i + 1, key[-1], f"duplicate key ({_fmt_key(key, k)}), first seen on row {first_row[k] + 1}"
                )
                reported_dup = True
            continue
        first_row[k] = i
        if k in existing and not reported_db:
            problems.add(p.file, i + 1, key[-1], f"key ({_fmt_key(key, k)}) already exists in ods.{p.spec.name}")
            reported_db = True
    return set(first_row)


def _check_refs(
    p: _Parsed, imported: dict[str, set[tuple]], failed: set[str], dbkeys: _DbKeys, problems: _Problems
) -> None:
    # A row failing one reference is not reported again for the next (an unknown site would
    # otherwise also be an unknown area, table and member).
    alive = np.ones(p.rows, dtype=bool)
    for ref in p.spec.refs:
        if ref.parent in failed or any(c not in p.values for c in ref.columns):
            continue
        parent_keys = dbkeys.get(ref.parent, ref.parent_columns) | imported.get(ref.parent, set())
        child = _key_tuples(p.values, ref.columns)
        missing = np.array([None not in k and k not in parent_keys for k in child], dtype=bool) & alive
        idx = np.flatnonzero(missing)
        if idx.size:
            i = int(idx[0])
            k = child[i]
            what = "site" if ref.parent == "sites" else ref.parent.rstrip("s").replace("_", " ")
            more = f" ({idx.size - 1} more rows)" if idx.size > 1 else ""
            problems.add(
                p.file,
                i + 1,
                ref.columns[-1],
                f"unknown {what} ({_fmt_key(ref.columns, k)}): in neither ods.{ref.parent} nor {ref.parent}.csv{more}",
            )
        alive &= ~missing


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _check_rows(p: _Parsed, imported_tables: dict[tuple, str], dbkeys: _DbKeys, problems: _Problems) -> None:
    v = p.values
    if p.spec.name in ("settlements", "assistant_services"):
        early = (v["ended_at"] < v["started_at"]).to_numpy(dtype=bool, na_value=False)
        if early.any():
            shown = v["ended_at"].astype(str).to_numpy()
            problems.bad_rows(p.file, "ended_at", early, shown, "ended_at is before started_at")
    if p.spec.name != "settlements":
        return
    zero = pd.Series(0, index=v["total"].index, dtype="Int64")
    parts = {c: v.get(c, zero) for c in ("table_fee", "assistant_fee", "goods_amount", "discount")}
    expected = parts["table_fee"] + parts["assistant_fee"] + parts["goods_amount"] - parts["discount"]
    off = (expected != v["total"]).to_numpy(dtype=bool, na_value=False)
    idx = np.flatnonzero(off)
    if idx.size:
        i = int(idx[0])
        more = f" ({idx.size - 1} more rows)" if idx.size > 1 else ""
        problems.add(
            p.file,
            i + 1,
            "total",
            f"total {_money(int(v['total'].iloc[i]))} != table_fee + assistant_fee + goods_amount - discount"
            f" = {int(expected.iloc[i]) / 100:.2f}{more}",
        )
    # The table's area must be the settlement's area, or area revenue would not add up.
    table_area = {(s, t): a for s, t, a in dbkeys.get("tables", ("site_id", "table_id", "area_code"))}
    table_area.update(imported_tables)
    for i, (s, t, a) in enumerate(_key_tuples(v, ("site_id", "table_id", "area_code"))):
        known = table_area.get((s, t))
        if known is not None and known != a:
            problems.add(p.file, i + 1, "area_code", f"table {t} of site {s} is in area {known}, not {a}")
            break


def _validate(conn: psycopg.Connection, parsed: list[_Parsed], failed: set[str], problems: _Problems) -> None:
    """Checks across rows and tables; ``failed`` names tables whose file did not parse (their
    keys are unknown, so references to them are not reported as missing)."""
    site_ids: set[int] = set()
    for p in parsed:
        if "site_id" in p.values:
            site_ids.update(int(s) for s in p.values["site_id"].dropna().unique())
    dbkeys = _DbKeys(conn, sorted(site_ids))
    imported: dict[str, set[tuple]] = {}
    imported_tables: dict[tuple, str] = {}
    for p in parsed:
        if not p.ok:
            continue
        imported[p.spec.name] = _check_keys(p, dbkeys, problems)
        _check_refs(p, imported, failed, dbkeys, problems)
        if p.spec.name == "tables":
            imported_tables = {(s, t): a for s, t, a in _key_tuples(p.values, ("site_id", "table_id", "area_code"))}
        _check_rows(p, imported_tables, dbkeys, problems)


# ---------------------------------------------------------------------------------------------
# Loading


def _copy_column(col: Column, series: pd.Series) -> np.ndarray:
    """One column as COPY text-format fields (numpy string ufuncs: no Python loop per value)."""
    missing = series.isna().to_numpy()
    if col.kind in ("int", "int4"):
        out = series.to_numpy(dtype=np.int64, na_value=0).astype(str)
    elif col.kind == "money":
        cents = series.to_numpy(dtype=np.int64, na_value=0)
        out = np.strings.add(
            np.strings.add((cents // 100).astype(str), "."), np.strings.zfill((cents % 100).astype(str), 2)
        )
    elif col.kind == "timestamp":
        utc = series.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
        out = np.strings.add(np.datetime_as_string(utc, unit="us"), "+00")
    elif col.kind == "date":
        out = np.array([d.isoformat() if d is not None else "" for d in series], dtype=str)
    elif col.kind == "bool":
        out = np.where(np.array([v is True for v in series], dtype=bool), "t", "f")
    else:
        out = series.fillna("").to_numpy(dtype=str)
        for char, escaped in (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r")):
            out = np.strings.replace(out, char, escaped)
    return np.where(missing, "\\N", out)


def _copy_data(p: _Parsed) -> tuple[list[Column], bytes]:
    """The parsed columns as COPY text-format data, one line per row."""
    columns = [c for c in p.spec.columns if c.name in p.values]
    if p.rows == 0:  # numpy's string ufuncs fail on empty arrays
        return columns, b""
    fields = [_copy_column(c, p.values[c.name]).tolist() for c in columns]
    lines = ["\t".join(row) for row in zip(*fields)]
    return columns, ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


_COPY_LINE = re.compile(r"COPY \w+, line (\d+)")


def _load(conn: psycopg.Connection, p: _Parsed) -> None:
    columns, data = _copy_data(p)
    stmt = sql.SQL("COPY {table} ({cols}) FROM STDIN").format(
        table=sql.Identifier("ods", p.spec.name), cols=sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
    )
    if not data:
        return
    try:
        with conn.cursor() as cur, cur.copy(stmt) as copy:
            copy.write(data)
    except psycopg.Error as exc:
        # The checks above mirror the schema; this is the database having the last word.
        diag = exc.diag
        line = _COPY_LINE.search(diag.context or "")
        raise CsvImportError(
            [
                CsvProblem(
                    p.file,
                    int(line.group(1)) if line else None,
                    diag.column_name,
                    f"rejected by the database: {diag.message_primary or exc}",
                )
            ]
        ) from exc


def import_csv(database_url: str, directory: str | Path) -> dict[str, int]:
    """Validate every ``<table>.csv`` in ``directory`` and load them in one transaction.

    Returns the number of rows loaded per table (only tables with a file). Raises
    :class:`CsvImportError` (nothing loaded) when any file has a problem.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CsvImportError([CsvProblem(str(directory), None, None, "not a directory")])
    problems = _Problems()
    files = {f.name: f for f in sorted(directory.iterdir()) if f.is_file() and f.suffix.lower() == ".csv"}
    expected = ", ".join(f"{t}.csv" for t in ODS_TABLES)
    for name in files:
        if Path(name).stem not in SPECS:
            problems.add(name, None, None, f"not an ODS table file (expected some of: {expected})")
    if not files:
        problems.add(str(directory), None, None, f"no CSV files (expected some of: {expected})")
    parsed: list[_Parsed] = []
    failed: set[str] = set()
    for spec in TABLE_SPECS:
        path = files.get(f"{spec.name}.csv")
        if path is not None:
            p = _parse_file(path, spec, problems)
            if p is None or not p.ok:
                failed.add(spec.name)
            if p is not None:
                parsed.append(p)
    with db.transaction(database_url) as conn:
        # Checks run inside the load's transaction, so they see what the load will see.
        _validate(conn, parsed, failed, problems)
        if problems.items:
            raise CsvImportError(problems.items)
        for p in parsed:
            _load(conn, p)
    return {p.spec.name: p.rows for p in parsed}


# ---------------------------------------------------------------------------------------------
# Export (same format; what the import reads back)


def export_csv(database_url: str, directory: str | Path, site_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Write every ODS table (optionally only some sites) as ``<table>.csv``; returns row counts.

    Timestamps are written in Asia/Shanghai with their offset, rows ordered by primary key.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sites = sorted(int(s) for s in site_ids) if site_ids is not None else None
    counts: dict[str, int] = {}
    with db.transaction(database_url) as conn:
        # One snapshot for all files, so every reference in the export resolves within it.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        conn.execute(
            "SELECT set_config('TimeZone', %s, true), set_config('DateStyle', 'ISO, YMD', true)", (DEFAULT_TIMEZONE,)
        )
        for spec in TABLE_SPECS:
            where = sql.SQL("")
            if sites is not None:
                ids = sql.SQL(", ").join(map(sql.Literal, sites)) if sites else sql.SQL("NULL")
                where = sql.SQL("WHERE site_id IN ({})").format(ids)
            cols = sql.SQL(", ").join(sql.Identifier(c.name) for c in spec.columns)
            stmt = sql.SQL(
                "COPY (SELECT {cols} FROM {table} {where} ORDER BY {key}) TO STDOUT (FORMAT csv, HEADER true)"
            ).format(
                cols=cols,
                table=sql.Identifier("ods", spec.name),
                where=where,
                key=sql.SQL(", ").join(map(sql.Identifier, spec.key)),
            )
            with conn.cursor() as cur, open(directory / f"{spec.name}.csv", "wb") as out:
                with cur.copy(stmt) as copy:
                    for chunk in copy:
                        out.write(chunk)
                counts[spec.name] = cur.rowcount
    return counts
