"""Deleting many keys of a dynamic partitions definition in one statement.

Dagster's public API deletes one key a call (``instance.delete_dynamic_partition``: a check that
its table exists, then one ``DELETE``), ~2-8 ms a key here: the first retirement after deploying,
on a backlog of 1,000,000 quiet member keys, would take about an hour. Adding keys is already one
statement for many (``add_dynamic_partitions``); this is its counterpart, with the same table
object and connection Dagster's own single delete uses (every event log storage Dagster ships is
SQL: Postgres, SQLite, MySQL). ``tests/test_instance_partitions.py`` fails if a release moves them.
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from dagster._core.storage.event_log.schema import DynamicPartitionsTable  # no public name
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage  # no public name


def delete_dynamic_partitions(instance: dg.DagsterInstance, partitions_def_name: str, keys: Sequence[str]) -> None:
    """Delete ``keys`` of ``partitions_def_name`` (those that exist; others are no error)."""
    if not keys:
        return
    storage = instance.event_log_storage
    if not isinstance(storage, SqlEventLogStorage):
        raise TypeError(f"dynamic partitions can be deleted in bulk only from SQL event storage, not {type(storage)}")
    table = DynamicPartitionsTable
    with storage.index_connection() as conn:
        conn.execute(
            table.delete().where(table.c.partitions_def_name == partitions_def_name, table.c.partition.in_(list(keys)))
        )
