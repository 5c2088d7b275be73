"""Dagster's Postgres event log storage, remembering each dynamic partitions definition's keys.

A run over a range of dynamic partition keys (a burst's new members, ``core/planning.py``) makes
Dagster read every key of the definition to slice the range (``get_partition_keys_in_range``):
counted here, six times for one run of a three-asset chain, three at run creation in the daemon
and three in the run's step. At 1,000,000 member keys each read took ~2 s, so a burst of 20 new
members took 18.9 s against 7.4 s at 2,010 keys (docs/benchmarks.md).

Here a process keeps the keys it read, with the definition's fingerprint: the highest row id,
the number of rows and the sum of their ids. The next read asks Postgres, in one statement (one
snapshot), for that fingerprint and for the rows past the highest id it knows:

- nothing new: the keys it has;
- only rows appended (ids only grow): those are added at the end, in id order, as Dagster orders;
- anything else (a key deleted, as retirement does, or a row with a lower id committed late):
  every key again, as Dagster reads them.

Ids come from a sequence, so a key added after a deletion has a new, higher id, and a deletion
lowers the count and the sum below what the appended rows explain. A deletion and a late row
together leave the count as it was, but not the sum: the two ids differ. Other processes'
writes are therefore seen at the next read, as without the cache. The cost is the keys' memory
in each long-lived process (~70 MB for 1,000,000 keys in the daemon), which Dagster's reads
allocate anyway.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dagster._core.storage.event_log.schema import DynamicPartitionsTable  # no public name
from dagster_postgres import PostgresEventLogStorage

if TYPE_CHECKING:
    from collections.abc import Sequence

_TABLE = DynamicPartitionsTable.name

# Both on the driver's cursor (psycopg2 parameters): SQLAlchemy's rows tripled the time of a
# whole read (1.97 s against 0.62 s for 1,000,000 keys here), and every run's step process
# starts with one.
# The fingerprint and the rows past the highest id known, in one statement (one snapshot).
_APPENDED_SQL = f"""WITH totals AS (
        SELECT max(id) AS max_id, count(*) AS n, sum(id) AS id_sum
          FROM {_TABLE} WHERE partitions_def_name = %(name)s
    )
    SELECT totals.max_id, totals.n, totals.id_sum, d.id, d.partition
      FROM totals LEFT JOIN {_TABLE} d ON d.partitions_def_name = %(name)s AND d.id > %(after)s
     ORDER BY d.id"""
_ALL_SQL = f"SELECT id, partition FROM {_TABLE} WHERE partitions_def_name = %(name)s ORDER BY id"


@dataclass
class _Keys:
    keys: list[str] = field(default_factory=list)
    max_id: int = 0
    count: int = 0
    id_sum: int = 0


@dataclass
class KeyReads:
    """How this process's reads of keys were answered (tests, diagnostics)."""

    whole: int = 0  # every key read
    appended: int = 0  # only the rows past the known highest id read
    unchanged: int = 0  # nothing new: the fingerprint alone


class KeyCachingPostgresEventLogStorage(PostgresEventLogStorage):
    """``PostgresEventLogStorage`` whose ``get_dynamic_partitions`` reads only what changed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keys: dict[str, _Keys] = {}
        self._keys_lock = threading.Lock()  # the daemon's threads share one instance
        self.key_reads = KeyReads()

    def get_dynamic_partitions(self, partitions_def_name: str) -> Sequence[str]:
        with self._keys_lock:
            known = self._keys.get(partitions_def_name)
            if known is None:
                self._check_partitions_table()  # Dagster's own check, once: a table is not dropped
            if known is None or not self._read_appended(partitions_def_name, known):
                known = self._read_all(partitions_def_name)
                self._keys[partitions_def_name] = known
            return list(known.keys)  # a copy: callers own what they are given, as before

    def _read_appended(self, name: str, known: _Keys) -> bool:
        """Bring ``known`` up to date from the rows past its highest id; False when that cannot
        explain the table's count and sum of ids (a deletion, or a lower id committed late)."""
        rows = self._fetch(_APPENDED_SQL, {"name": name, "after": known.max_id})
        max_id, count, id_sum = rows[0][0] or 0, rows[0][1], int(rows[0][2] or 0)
        appended = [(row[3], row[4]) for row in rows if row[3] is not None]
        explained = (known.count + len(appended), known.id_sum + sum(row_id for row_id, _ in appended))
        if (count, id_sum) != explained:
            return False
        if appended:
            known.keys.extend(partition for _, partition in appended)
            known.max_id, known.count, known.id_sum = max_id, count, id_sum
            self.key_reads.appended += 1
        else:
            self.key_reads.unchanged += 1
        return True

    def _read_all(self, name: str) -> _Keys:
        rows = self._fetch(_ALL_SQL, {"name": name})
        self.key_reads.whole += 1
        return _Keys(
            keys=[row[1] for row in rows],
            max_id=rows[-1][0] if rows else 0,
            count=len(rows),
            id_sum=sum(row[0] for row in rows),
        )

    def _fetch(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self.index_connection() as conn:
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(sql, params)
                return cursor.fetchall()
            finally:
                cursor.close()
