"""Loading the generated rows: COPY text format written by hand (faster than adapting every
value), streamed from a worker thread while the simulation continues."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from datetime import date, timedelta

import psycopg
from psycopg import sql

from zqyy_assets.core.ods_tables import TABLE_SPECS, money_text

COLUMNS: dict[str, tuple[str, ...]] = {t.name: tuple(c.name for c in t.columns) for t in TABLE_SPECS}
STATIC_TABLES = ("sites", "areas", "tables", "members", "assistants")
DAILY_TABLES = ("settlements", "assistant_services", "recharges", "notes", "tasks")  # foreign-key order
CHUNK_ROWS = 10_000  # settlements per COPY statement (~6 weeks of one site)

_DAY_TEXT: dict[int, str] = {}


def _ts_text(epoch: int) -> str:
    """Epoch seconds as a UTC timestamptz literal (the server stores UTC anyway)."""
    day, sec = divmod(epoch, 86400)
    text = _DAY_TEXT.get(day)
    if text is None:
        text = _DAY_TEXT[day] = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
    return f"{text} {sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}+00"


def _text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


_FORMAT = {
    "int": str,
    "int4": str,
    "text": _text,
    "money": money_text,
    "timestamp": _ts_text,
    "date": date.isoformat,
    "bool": lambda b: "t" if b else "f",
}
_FORMATTERS = {t.name: tuple(_FORMAT[c.kind] for c in t.columns) for t in TABLE_SPECS}


def _copy_text(table: str, rows: Iterable[tuple]) -> bytes:
    fmts = _FORMATTERS[table]
    lines = ["\t".join([f(v) if v is not None else "\\N" for f, v in zip(fmts, row, strict=True)]) for row in rows]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def _copy_stmt(table: str) -> sql.Composed:
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier("ods", table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS[table]))
    )


def copy_all(conn: psycopg.Connection, table: str, rows: list[tuple]) -> None:
    with conn.cursor() as cur, cur.copy(_copy_stmt(table)) as copy:
        for i in range(0, len(rows), 10_000):
            copy.write(_copy_text(table, rows[i : i + 10_000]))


class Loader:
    """Runs COPY statements on a worker thread, in the order they were queued.

    Foreign-key checks are AFTER triggers that fire when each COPY statement ends; streaming
    a few days per statement lets Postgres check one chunk while Python simulates the next.
    The connection is used only by this thread between start and close.
    """

    def __init__(self, conn: psycopg.Connection):
        self.conn = conn
        self.queue: queue.Queue[tuple[str, bytes] | None] = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="ods-demo-loader", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is not None:
                continue  # drain: the transaction is lost anyway
            table, data = item
            try:
                with self.conn.cursor() as cur, cur.copy(_copy_stmt(table)) as copy:
                    copy.write(data)
            except BaseException as exc:  # handed to the caller's thread in put() / close()
                self.error = exc

    def put(self, table: str, rows: list[tuple]) -> None:
        if self.error is not None:
            raise self.error
        if rows:
            self.queue.put((table, _copy_text(table, rows)))

    def close(self, reraise: bool = True) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None and reraise:
            raise self.error
