"""Checks across rows and tables: duplicate keys, references, settlement totals and areas.

They run inside the load's transaction, against the keys already in the database for the
sites the import touches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from zqyy_assets.core.ods_tables import money_text
from zqyy_assets.tools.csv_io.parsing import ParsedFile
from zqyy_assets.tools.csv_io.problems import ProblemList


def _key_tuples(values: dict[str, pd.Series], columns: Sequence[str]) -> list[tuple]:
    return list(zip(*(values[c].astype(object).where(values[c].notna(), None).tolist() for c in columns), strict=True))


class DbKeys:
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
    return ", ".join(f"{c}={v}" for c, v in zip(columns, key, strict=True))


def _check_keys(p: ParsedFile, dbkeys: DbKeys, problems: ProblemList) -> set[tuple]:
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
    p: ParsedFile, imported: dict[str, set[tuple]], failed: set[str], dbkeys: DbKeys, problems: ProblemList
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


def _check_rows(p: ParsedFile, imported_tables: dict[tuple, str], dbkeys: DbKeys, problems: ProblemList) -> None:
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
            f"total {money_text(int(v['total'].iloc[i]))} != table_fee + assistant_fee + goods_amount - discount"
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


def validate(conn: psycopg.Connection, parsed: list[ParsedFile], failed: set[str], problems: ProblemList) -> None:
    """Checks across rows and tables; ``failed`` names tables whose file did not parse (their
    keys are unknown, so references to them are not reported as missing)."""
    site_ids: set[int] = set()
    for p in parsed:
        if "site_id" in p.values:
            site_ids.update(int(s) for s in p.values["site_id"].dropna().unique())
    dbkeys = DbKeys(conn, sorted(site_ids))
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
