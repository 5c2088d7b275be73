"""Reading one ``<table>.csv`` into typed columns, reporting every value that does not fit."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from zqyy_assets.core.business_date import DEFAULT_TIMEZONE
from zqyy_assets.core.ods_tables import Column, TableSpec
from zqyy_assets.tools.csv_io.problems import ProblemList

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
class ParsedFile:
    spec: TableSpec
    file: str
    values: dict[str, pd.Series]  # typed: Int64 ints and cents, datetime64[us, UTC], object dates/bools/text
    ok: bool  # every value parsed; only then do cross-row checks run on this table
    rows: int


def _read(path: Path, problems: ProblemList) -> pd.DataFrame | None:
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


def parse_file(
    path: Path, spec: TableSpec, problems: ProblemList, timezone: str = DEFAULT_TIMEZONE
) -> ParsedFile | None:
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
        parsed = _parse_column(file, col, df[col.name], problems, timezone)
        if parsed is None:
            ok = False
        else:
            values[col.name] = parsed
    return ParsedFile(spec, file, values, ok, len(df))


def _parse_column(file: str, col: Column, raw: pd.Series, problems: ProblemList, timezone: str) -> pd.Series | None:
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
        out = ~np.array([lo <= int(v) <= hi for v in digits], dtype=bool) if ints is None else (ints < lo) | (ints > hi)
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
            local = local.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT")
            result[naive] = local.dt.tz_convert("UTC").dt.as_unit("us")
        if bad(result.isna().to_numpy(), "not a valid date and time"):
            return None
        return result

    if col.kind == "date":
        shaped = ~_mismatches(values, filled, _DATE_RE)
        parsed = pd.to_datetime(pd.Series(np.where(filled & shaped, values, None)), format="%Y-%m-%d", errors="coerce")
        if bad(parsed.isna().to_numpy(), "not a date (YYYY-MM-DD)"):
            return None
        return pd.Series(
            [d.date() if f else None for d, f in zip(parsed, filled, strict=True)], index=index, dtype=object
        )

    if col.kind == "bool":
        low = [v.lower() for v in values]
        if bad(~np.isin(low, list(_TRUE | _FALSE)), "not a boolean (true/false)"):
            return None
        return pd.Series(
            [(v in _TRUE) if f else None for v, f in zip(low, filled, strict=True)], index=index, dtype=object
        )

    raise ValueError(f"unknown column kind {col.kind!r}")


def _mismatches(values: np.ndarray, filled: np.ndarray, pattern: str) -> np.ndarray:
    """Mask of filled values that do not fully match ``pattern``."""
    regex = re.compile(pattern)
    return filled & np.array([m is None for m in map(regex.fullmatch, values.tolist())], dtype=bool)
