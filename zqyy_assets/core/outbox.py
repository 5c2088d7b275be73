"""The realtime outbox (``biz.realtime_outbox``, migration 0012): what happened at a site, in order.

Writers never call Python to publish: triggers on ``biz.ai_cache`` (a valid answer cached ->
``cache_updated``), ``biz.ai_alerts`` (-> ``alert_created``) and ``biz.ai_events`` (an inbox
event's phase changing -> ``event_status``) call the one SQL writer, ``biz.realtime_publish``,
in the writer's own transaction: the outbox row commits or rolls back with the change, whichever
process (a Dagster run worker, a sensor, the API) made it. :func:`publish` is the same writer
for a push not tied to one of those tables.

``seq`` is per site and follows commit order (see the migration); ``LISTEN zqyy_realtime`` gets
the site id as a wake-up, and the reader takes the site's rows past the last seq it delivered.
No Dagster here: the API's hub (``api/realtime``) reads with these statements.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from psycopg.types.json import Jsonb

from zqyy_assets.core.db import DictConnection

CHANNEL = "zqyy_realtime"
ALERT_CREATED, CACHE_UPDATED, EVENT_STATUS = "alert_created", "cache_updated", "event_status"
TYPES = (ALERT_CREATED, CACHE_UPDATED, EVENT_STATUS)

# The rows of one site after a seq, oldest first (the index on (site_id, seq) serves it).
READ_AFTER_SQL = """SELECT site_id, seq, type, payload, created_at FROM biz.realtime_outbox
                    WHERE site_id = %(site_id)s AND seq > %(after)s AND seq <= %(upto)s
                    ORDER BY seq LIMIT %(limit)s"""
# The last seq committed for a site (0 when it never had one).
LAST_SEQ_SQL = "SELECT coalesce(max(last_seq), 0) AS last_seq FROM biz.realtime_seq WHERE site_id = %s"
PURGE_SQL = "DELETE FROM biz.realtime_outbox WHERE created_at < now() - %s"
NO_LIMIT = 2**62


@dataclass(frozen=True)
class Message:
    site_id: int
    seq: int
    type: str
    payload: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Message:
        return cls(row["site_id"], row["seq"], row["type"], row["payload"], row["created_at"])

    def envelope(self) -> dict[str, Any]:
        """The seed's envelope: ``{"type", "site_id", "payload", "created_at", "seq"}``."""
        return {
            "type": self.type,
            "site_id": self.site_id,
            "payload": self.payload,
            "created_at": self.created_at.isoformat(),
            "seq": self.seq,
        }

    @cached_property
    def text(self) -> str:
        """The envelope as JSON text, made once however many subscribers it goes to."""
        return json.dumps(self.envelope(), ensure_ascii=False, separators=(",", ":"))


def publish(conn: DictConnection, site_id: int, type_: str, payload: dict[str, Any]) -> int:
    """Push one message in the caller's transaction (it is delivered once that commits); its seq."""
    if type_ not in TYPES:
        raise ValueError(f"unknown realtime message type {type_!r}")
    row = conn.execute("SELECT biz.realtime_publish(%s, %s, %s) AS seq", (site_id, type_, Jsonb(payload))).fetchone()
    assert row is not None
    return int(row["seq"])


def read_after(conn: DictConnection, site_id: int, after: int, *, limit: int = 1000) -> list[Message]:
    rows = conn.execute(READ_AFTER_SQL, {"site_id": site_id, "after": after, "upto": NO_LIMIT, "limit": limit})
    return [Message.from_row(r) for r in rows.fetchall()]


def last_seq(conn: DictConnection, site_id: int) -> int:
    row = conn.execute(LAST_SEQ_SQL, (site_id,)).fetchone()
    return int(row["last_seq"]) if row else 0


def purge(conn: DictConnection, retention: timedelta) -> int:
    """Delete the rows older than ``retention``; returns how many. The seq counters stay."""
    return conn.execute(PURGE_SQL, (retention,)).rowcount
