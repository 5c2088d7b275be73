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
# Each change is ONE statement, so the pool's row is locked for that statement alone (a lock
# held across round trips convoys every process on a loaded machine). The UPDATE re-reads the
# row once it has the lock, so ``held`` is always the latest count.
_TAKE = """
WITH took AS (
    UPDATE biz.ai_inflight_cap SET held = held + 1
     WHERE pool = %(pool)s AND held < floor(LEAST(%(ceiling)s, GREATEST(%(floor)s, cap)))
    RETURNING pool)
INSERT INTO biz.ai_inflight_lease (pool, holder, expires_at)
SELECT pool, %(holder)s, clock_timestamp() + make_interval(secs => %(ttl)s) FROM took
RETURNING id
"""
# Leases past their expiry (a crashed holder's) stop counting.
_SWEEP = """
WITH gone AS (DELETE FROM biz.ai_inflight_lease WHERE pool = %(pool)s AND expires_at < clock_timestamp() RETURNING 1)
UPDATE biz.ai_inflight_cap SET held = GREATEST(0, held - (SELECT count(*) FROM gone))
 WHERE pool = %(pool)s AND EXISTS (SELECT 1 FROM gone)
RETURNING held
"""
# End a lease: the count, and the cap's AIMD step. ``c`` is the row as it was (the lock taken,
# the latest version): a throttle from a lease taken after the last cut cuts; a success while
# the pool was full (the cap was what limited) grows it, by 1 in slow start, else by 1 / cap.
_RELEASE = """
WITH gone AS (DELETE FROM biz.ai_inflight_lease WHERE id = %(lease)s RETURNING acquired_at),
c AS (SELECT pool, cap, slow_start, held, last_cut_at FROM biz.ai_inflight_cap WHERE pool = %(pool)s FOR UPDATE),
d AS (SELECT c.*, LEAST(%(ceiling)s, GREATEST(%(floor)s, c.cap)) AS eff,
             EXISTS (SELECT 1 FROM gone) AS had,
             %(outcome)s = 'throttled' AND EXISTS (SELECT 1 FROM gone)
                 AND (c.last_cut_at IS NULL OR c.last_cut_at < (SELECT acquired_at FROM gone)) AS cut
        FROM c)
UPDATE biz.ai_inflight_cap t
   SET held = GREATEST(0, d.held - CASE WHEN d.had THEN 1 ELSE 0 END),
       cap = CASE WHEN d.cut THEN GREATEST(%(floor)s, d.eff * %(factor)s)
                  WHEN %(outcome)s = 'success' AND d.had AND d.held >= floor(d.eff)
                  THEN LEAST(%(ceiling)s, d.eff + CASE WHEN d.slow_start THEN 1 ELSE 1 / GREATEST(d.eff, 1) END)
                  ELSE d.cap END,
       slow_start = d.slow_start AND NOT d.cut,
       cuts = t.cuts + CASE WHEN d.cut THEN 1 ELSE 0 END,
       throttles = t.throttles + CASE WHEN %(outcome)s = 'throttled' THEN 1 ELSE 0 END,
       last_cut_at = CASE WHEN d.cut THEN clock_timestamp() ELSE d.last_cut_at END,
       updated_at = CASE WHEN d.cut OR t.cap <> d.cap THEN clock_timestamp() ELSE t.updated_at END
  FROM d
 WHERE t.pool = d.pool
RETURNING d.cut, d.cap AS before, t.cap AS after, t.cuts
"""


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
        params = self._params()
        with self._connect() as conn:
            if not self._ensured:
                conn.execute(_ENSURE, params)
                self._ensured = True
            taken = conn.execute(_TAKE, params).fetchone()
            if taken is None:
                conn.execute(_ENSURE, params)  # full, or the pool's row is gone: made again
                if conn.execute(_SWEEP, params).fetchone() is not None:
                    taken = conn.execute(_TAKE, params).fetchone()  # a crashed holder's slot came free
        return int(taken["id"]) if taken else None

    def _params(self, **more: object) -> dict[str, object]:
        s = self.settings
        return {
            "pool": s.pool,
            "start": s.clamp(s.start),
            "floor": float(s.floor),
            "ceiling": float(s.ceiling),
            "factor": s.decrease_factor,
            "holder": self._holder,
            "ttl": s.lease_ttl_s,
            **more,
        }

    # -------------------------------------------------------------------------- release

    def release(self, lease_id: int, outcome: Outcome) -> None:
        """End a lease; a success may grow the cap, a throttle cut it (once per congestion event)."""
        with self._connect() as conn:
            row = conn.execute(_RELEASE, self._params(lease=lease_id, outcome=outcome)).fetchone()
        self._freed.set()
        if row is None:
            return
        before, after = float(row["before"]), float(row["after"])
        if row["cut"]:
            logger.warning(
                "LLM in-flight cap cut from %d to %d (%.2f) after a throttling answer (cut %d)",
                math.floor(before),
                math.floor(after),
                after,
                row["cuts"],
            )
        elif math.floor(after) > math.floor(before):
            logger.info("LLM in-flight cap grew to %d (%.2f)", math.floor(after), after)

    # ------------------------------------------------------------------------- reading

    def snapshot(self) -> CapSnapshot:
        """The cap now (clamped to the settings), the leases held, cuts and throttles so far."""
        s = self.settings
        with self._connect() as conn:
            row = conn.execute(
                "SELECT cap, held, cuts, throttles FROM biz.ai_inflight_cap WHERE pool = %(pool)s", {"pool": s.pool}
            ).fetchone()
        if row is None:
            return CapSnapshot(cap=s.clamp(s.start), held=0, cuts=0, throttles=0)
        cap = s.clamp(float(row["cap"]))
        return CapSnapshot(cap=cap, held=int(row["held"]), cuts=int(row["cuts"]), throttles=int(row["throttles"]))
