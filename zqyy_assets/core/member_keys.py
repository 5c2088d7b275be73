"""Which `members` / `assistant_members` partition keys are stale: their member had no inbox
event in the retention window. The daily retirement (``defs/events/retirement.py``) deletes them
from Dagster; the answers cached for them stay in ``biz.ai_cache`` and the API keeps serving them.
A retired member's next event makes the inbox sensor add the key again (it is new to Dagster).

The retirement and the inbox sensor take one advisory lock (shared by the sensor, exclusive by
a retirement page), so a key is never deleted between the sensor finding it present (and
planning a run on it) and its commit: the retirement's check, made under the lock, sees the
event the sensor planned from, and keeps the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from zqyy_assets.core.db import DictConnection
from zqyy_assets.core.partition_keys import parse_assistant_member_key, parse_member_key
from zqyy_assets.core.vocabulary import ASSISTANT_MEMBERS, MEMBERS

_LOCK_ID = 7_240_020  # project-wide advisory lock id: member key planning vs. retirement


def hold_planning_lock(conn: DictConnection) -> None:
    """The inbox sensor's side, until its transaction ends (shared: sensors never wait on each other)."""
    conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (_LOCK_ID,))


def hold_retirement_lock(conn: DictConnection) -> None:
    """A retirement page's side, until its transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))


def member_of(partitions: str, key: str) -> tuple[int, int] | None:
    """(site id, member id) of a key, or None when the key is not of this project's format."""
    try:
        if partitions == MEMBERS:
            parsed = parse_member_key(key)
            return parsed.site_id, parsed.member_id
        if partitions == ASSISTANT_MEMBERS:
            am = parse_assistant_member_key(key)
            return am.site_id, am.member_id
    except ValueError:
        return None
    raise ValueError(f"not a member partitions definition: {partitions!r}")


@dataclass
class PageVerdict:
    stale: list[str] = field(default_factory=list)  # to retire
    active: list[str] = field(default_factory=list)  # an event since the cut-off
    unrecognised: list[str] = field(default_factory=list)  # not a member key: left alone


def judge_page(conn: DictConnection, partitions: str, keys: Sequence[str], since: datetime) -> PageVerdict:
    """Sort one page of keys: stale (no event of their member since ``since``), active, or
    unrecognised. One query, one index probe per key (migration 0020)."""
    verdict = PageVerdict()
    known: list[tuple[str, int, int]] = []
    for key in keys:
        member = member_of(partitions, key)
        if member is None:
            verdict.unrecognised.append(key)
        else:
            known.append((key, *member))
    if not known:
        return verdict
    rows = conn.execute(
        """SELECT k.key, EXISTS (
                   SELECT 1 FROM biz.ai_events e
                   WHERE e.site_id = k.site_id AND e.member_id = k.member_id AND e.created_at >= %s
               ) AS active
           FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) AS k(key, site_id, member_id)""",
        (since, [k for k, _, _ in known], [s for _, s, _ in known], [m for _, _, m in known]),
    ).fetchall()
    for row in rows:
        (verdict.active if row["active"] else verdict.stale).append(row["key"])
    return verdict
