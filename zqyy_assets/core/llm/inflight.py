"""One cap on LLM calls in flight, shared by every process, that adapts to the provider (AIMD).

Run processes (one per prewarm shard, one per member chain) and the API all call the same
provider, whose limit (requests and tokens per minute, enforced per second) is one for all of
them. So the cap lives in Postgres (``biz.ai_inflight_cap``, one row per pool) and every call in
flight holds a lease (``biz.ai_inflight_lease``); a lease counts until it is released or, for a
crashed holder, until it expires (``lease_ttl_s``, longer than any call may last).

AIMD, as TCP's congestion window:

- a throttling answer (HTTP 429 ``Throttling*``) cuts the cap to ``cap * decrease_factor``
  (never below ``floor``), once per congestion event: only a call whose lease was taken after
  the last cut can cut again, so the burst of 429s one overshoot causes counts once;
- a success grows the cap while the cap is what limits (the pool was full when the call
  ended): by one slot per success until the first throttle (slow start: doubling per round
  trip), then by ``1 / cap`` (one slot per round trip), never above ``ceiling``.

The cap starts at ``start`` the first time a pool is used and is remembered (a prewarm starts
where the previous left off). Every change is logged (cuts at WARNING) and ``snapshot()`` gives
the figures a run reports as metadata.

Waiting for a slot: the threads of one process queue in FIFO order and only the first polls
Postgres (backing off from 5 to 100 ms, woken at once when a lease of this process is released),
so a process with 64 waiting threads costs Postgres one poll at a time, not 64.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

from zqyy_assets.core.db import DictConnection

logger = logging.getLogger(__name__)

Connect = Callable[[], AbstractContextManager[DictConnection]]
Outcome = Literal["success", "throttled", "other"]

DEFAULT_POOL = "dashscope"
_MIN_POLL_S, _MAX_POLL_S = 0.005, 0.1


@dataclass(frozen=True)
class InflightSettings:
    start: int = 8
    floor: int = 1
    ceiling: int = 64
    decrease_factor: float = 0.9
    max_wait_s: float = 120.0  # wait this long for a slot before refusing the call
    lease_ttl_s: float = 900.0  # a lease older than this (a crashed holder) holds nothing
    pool: str = DEFAULT_POOL

    def clamp(self, cap: float) -> float:
        return min(float(self.ceiling), max(float(self.floor), cap))


@dataclass(frozen=True)
class CapSnapshot:
    cap: float
    held: int
    cuts: int
    throttles: int

    @property
    def slots(self) -> int:
        return math.floor(self.cap)


_ENSURE = """INSERT INTO biz.ai_inflight_cap (pool, cap) VALUES (%(pool)s, %(start)s) ON CONFLICT (pool) DO NOTHING"""
_LOCK = """SELECT cap, slow_start, cuts, throttles FROM biz.ai_inflight_cap WHERE pool = %(pool)s FOR UPDATE"""
# A second statement, after the lock: its snapshot sees every lease committed before the lock was ours.
_TAKE = """
WITH gone AS (DELETE FROM biz.ai_inflight_lease WHERE pool = %(pool)s AND expires_at < clock_timestamp()),
     held AS (SELECT count(*) AS n FROM biz.ai_inflight_lease
               WHERE pool = %(pool)s AND expires_at >= clock_timestamp())
INSERT INTO biz.ai_inflight_lease (pool, holder, expires_at)
SELECT %(pool)s, %(holder)s, clock_timestamp() + make_interval(secs => %(ttl)s)
  FROM held WHERE held.n < %(slots)s
RETURNING id
"""
_HELD = """SELECT count(*) AS n FROM biz.ai_inflight_lease WHERE pool = %(pool)s AND expires_at >= clock_timestamp()"""


class InflightCap:
    """The shared cap, seen from one process; thread-safe."""

    def __init__(self, connect: Connect, settings: InflightSettings, *, clock: Callable[[], float] = time.monotonic):
        self._connect = connect
        self.settings = settings
        self._clock = clock
        self._holder = f"{socket.gethostname()}:{os.getpid()}"
        self._ensured = False
        self._turn = threading.Condition()  # waiting threads of this process, one polls at a time
        self._polling = False
        self._freed = threading.Event()  # a lease of this process was released: poll now

    # -------------------------------------------------------------------------- acquire

    def acquire(self) -> int | None:
        """A lease id once a slot is free, or None after ``max_wait_s`` without one."""
        deadline = self._clock() + self.settings.max_wait_s
        with self._turn:
            while self._polling:
                if not self._turn.wait(timeout=max(deadline - self._clock(), 0)) and self._clock() >= deadline:
                    return None
            self._polling = True
        try:
            poll = _MIN_POLL_S
            while True:
                self._freed.clear()
                lease = self.try_acquire()
                if lease is not None:
                    return lease
                left = deadline - self._clock()
                if left <= 0:
                    return None
                woken = self._freed.wait(timeout=min(poll, left))
                poll = _MIN_POLL_S if woken else min(poll * 2, _MAX_POLL_S)
        finally:
            with self._turn:
                self._polling = False
                self._turn.notify()

    def try_acquire(self) -> int | None:
        """One attempt: a lease id, or None when the pool is full."""
        s = self.settings
        params = {"pool": s.pool, "start": float(s.clamp(s.start)), "holder": self._holder, "ttl": s.lease_ttl_s}
        with self._connect() as conn, conn.transaction():
            if not self._ensured:
                conn.execute(_ENSURE, params)
                self._ensured = True
            row = conn.execute(_LOCK, params).fetchone()
            if row is None:  # the row was removed behind our back: make it again next time
                self._ensured = False
                return None
            taken = conn.execute(_TAKE, {**params, "slots": math.floor(s.clamp(float(row["cap"])))}).fetchone()
        return int(taken["id"]) if taken else None

    # -------------------------------------------------------------------------- release

    def release(self, lease_id: int, outcome: Outcome) -> None:
        """End a lease; a success may grow the cap, a throttle cut it (once per congestion event)."""
        s = self.settings
        with self._connect() as conn, conn.transaction():
            row = conn.execute(_LOCK, {"pool": s.pool}).fetchone()
            if outcome == "throttled":
                self._cut(conn, lease_id)
            held = int(conn.execute(_HELD, {"pool": s.pool}).fetchone()["n"])  # type: ignore[index]
            conn.execute("DELETE FROM biz.ai_inflight_lease WHERE id = %s", (lease_id,))
            if outcome == "success" and row is not None:
                cap = float(row["cap"])
                if held >= math.floor(s.clamp(cap)):  # the cap was what limited: probe for more
                    grown = s.clamp(cap + (1.0 if row["slow_start"] else 1.0 / max(cap, 1.0)))
                    if grown != cap:
                        conn.execute(
                            "UPDATE biz.ai_inflight_cap SET cap = %s, updated_at = clock_timestamp() WHERE pool = %s",
                            (grown, s.pool),
                        )
                        if math.floor(grown) != math.floor(cap):
                            logger.debug("LLM in-flight cap grew to %d (%.2f)", math.floor(grown), grown)
        self._freed.set()

    def throttled(self, lease_id: int) -> None:
        """A throttling answer to a call still holding its lease (it will retry): maybe cut."""
        with self._connect() as conn, conn.transaction():
            conn.execute(_LOCK, {"pool": self.settings.pool})
            self._cut(conn, lease_id)

    def _cut(self, conn: DictConnection, lease_id: int) -> None:
        s = self.settings
        cut = conn.execute(
            """
            UPDATE biz.ai_inflight_cap c
               SET cap = GREATEST(%(floor)s, LEAST(%(ceiling)s, c.cap) * %(factor)s),
                   slow_start = false, cuts = c.cuts + 1, last_cut_at = clock_timestamp(),
                   updated_at = clock_timestamp()
             WHERE c.pool = %(pool)s
               AND (c.last_cut_at IS NULL
                    OR c.last_cut_at < (SELECT acquired_at FROM biz.ai_inflight_lease WHERE id = %(lease)s))
            RETURNING c.cap, c.cuts
            """,
            {
                "floor": float(s.floor),
                "ceiling": float(s.ceiling),
                "factor": s.decrease_factor,
                "pool": s.pool,
                "lease": lease_id,
            },
        ).fetchone()
        conn.execute("UPDATE biz.ai_inflight_cap SET throttles = throttles + 1 WHERE pool = %s", (s.pool,))
        if cut is not None:
            logger.warning(
                "LLM in-flight cap cut to %d (%.2f) after a throttling answer (cut %d)",
                math.floor(cut["cap"]),
                cut["cap"],
                cut["cuts"],
            )

    # ------------------------------------------------------------------------- reading

    def snapshot(self) -> CapSnapshot:
        """The cap now (clamped to the settings), the leases held, cuts and throttles so far."""
        s = self.settings
        with self._connect() as conn:
            row = conn.execute(
                "SELECT cap, cuts, throttles FROM biz.ai_inflight_cap WHERE pool = %(pool)s", {"pool": s.pool}
            ).fetchone()
            held = int(conn.execute(_HELD, {"pool": s.pool}).fetchone()["n"])  # type: ignore[index]
        if row is None:
            return CapSnapshot(cap=s.clamp(s.start), held=held, cuts=0, throttles=0)
        cap = s.clamp(float(row["cap"]))
        return CapSnapshot(cap=cap, held=held, cuts=int(row["cuts"]), throttles=int(row["throttles"]))
