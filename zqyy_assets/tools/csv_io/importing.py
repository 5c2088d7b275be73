"""``import_csv``: parse every file, check them together, then COPY them in one transaction."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from zqyy_assets.core import db
from zqyy_assets.core.business_date import DEFAULT_TIMEZONE
from zqyy_assets.core.ods_tables import ODS_TABLES, SPECS, TABLE_SPECS, Column
from zqyy_assets.tools.csv_io.checks import validate
from zqyy_assets.tools.csv_io.parsing import ParsedFile, parse_file
from zqyy_assets.tools.csv_io.problems import CsvImportError, CsvProblem, ProblemList


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


def _copy_data(p: ParsedFile) -> tuple[list[Column], bytes]:
    """The parsed columns as COPY text-format data, one line per row."""
    columns = [c for c in p.spec.columns if c.name in p.values]
    if p.rows == 0:  # numpy's string ufuncs fail on empty arrays
        return columns, b""
    fields = [_copy_column(c, p.values[c.name]).tolist() for c in columns]
    lines = ["\t".join(row) for row in zip(*fields, strict=True)]
    return columns, ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


_COPY_LINE = re.compile(r"COPY \w+, line (\d+)")


def _load(conn: psycopg.Connection, p: ParsedFile) -> None:
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


def import_csv(database_url: str, directory: str | Path, *, timezone: str = DEFAULT_TIMEZONE) -> dict[str, int]:
    """Validate every ``<table>.csv`` in ``directory`` and load them in one transaction.

    Times without an offset are the venue's local time in ``timezone``. Returns the number of
    rows loaded per table (only tables with a file). Raises
    :class:`CsvImportError` (nothing loaded) when any file has a problem.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CsvImportError([CsvProblem(str(directory), None, None, "not a directory")])
    problems = ProblemList()
    files = {f.name: f for f in sorted(directory.iterdir()) if f.is_file() and f.suffix.lower() == ".csv"}
    expected = ", ".join(f"{t}.csv" for t in ODS_TABLES)
    for name in files:
        if Path(name).stem not in SPECS:
            problems.add(name, None, None, f"not an ODS table file (expected some of: {expected})")
    if not files:
        problems.add(str(directory), None, None, f"no CSV files (expected some of: {expected})")
    parsed: list[ParsedFile] = []
    failed: set[str] = set()
    for spec in TABLE_SPECS:
        path = files.get(f"{spec.name}.csv")
        if path is not None:
            p = parse_file(path, spec, problems, timezone)
            if p is None or not p.ok:
                failed.add(spec.name)
            if p is not None:
                parsed.append(p)
    with db.transaction(database_url) as conn:
        # Checks run inside the load's transaction, so they see what the load will see.
        validate(conn, parsed, failed, problems)
        if problems.items:
            raise CsvImportError(problems.items)
        for p in parsed:
            _load(conn, p)
    return {p.spec.name: p.rows for p in parsed}
