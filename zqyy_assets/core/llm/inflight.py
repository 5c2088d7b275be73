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

Fair turns between processes: the process whose lease was released would otherwise win every
free slot (its poller is woken at once, the others' poll later), and a prewarm shard holding
the pool would keep it from the other shards and from the API's chat for minutes. So a process
whose poller found the pool full joins a queue (``biz.ai_inflight_waiter``, one row per process,
``waiting_since`` kept while it waits, ``seen_at`` refreshed at most every ``_REFRESH_S``) and a
slot is taken only if the free slots outnumber the processes that have waited longer
(``held + ahead < cap``; the slots beyond theirs are anyone's): a process that has no place in
the queue yields to every waiting one. Taking a slot ends the process's wait (``waiting_since``
NULL), so its next wait starts at the back: the turns go round the waiting processes. A process
that gives up waiting leaves the queue; a row not seen for ``waiter_live_s`` (a crashed or
stalled process) stops counting by itself. While other processes wait, the poller looks again
after ``_CONTENDED_POLL_S`` times (1 + the processes ahead of it), not backing off to 100 ms,
so a slot that is another process's turn is not left idle long; a poll is one statement
(expired leases are swept at most every ``_SWEEP_EVERY_S``).
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
from typing import Any, Literal

from zqyy_assets.core.db import DictConnection

logger = logging.getLogger(__name__)

Connect = Callable[[], AbstractContextManager[DictConnection]]
Outcome = Literal["success", "throttled", "other"]

DEFAULT_POOL = "dashscope"
_MIN_POLL_S, _MAX_POLL_S = 0.005, 0.1
_CONTENDED_POLL_S = 0.005  # while other processes wait: per process ahead in the queue
_REFRESH_S = 0.25  # a waiting process's seen_at is written at most this often
_SWEEP_EVERY_S = 1.0  # a waiting poller sweeps expired leases at most this often


@dataclass(frozen=True)
class InflightSettings:
    start: int = 8
    floor: int = 1
    ceiling: int = 64
    decrease_factor: float = 0.9
    max_wait_s: float = 120.0  # wait this long for a slot before refusing the call
    lease_ttl_s: float = 900.0  # a lease older than this (a crashed holder) holds nothing
    waiter_live_s: float = 2.0  # a waiting process not seen for this long (crashed) loses its turn
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
# row once it has the lock, so ``held`` is always the latest count; the queue is read as the
# statement began (a process joining the queue meanwhile counts from the next poll on).
#
# A slot is taken when the free slots outnumber the live waiting processes ahead of this one
# (all of them when this one is not waiting): taken, its wait ends; not taken, it joins the
# queue (``queue``: the pollers of ``acquire``, not a one-shot ``try_acquire``) or stays in it,
# ``seen_at`` written only if older than ``refresh``. A row not seen for ``live`` seconds (its
# process gone or stalled) counts for nothing and, refreshed again, starts a new wait.
_TAKE = """
WITH mine AS (
    SELECT waiting_since FROM biz.ai_inflight_waiter
     WHERE pool = %(pool)s AND holder = %(holder)s AND waiting_since IS NOT NULL
       AND seen_at > clock_timestamp() - make_interval(secs => %(live)s)),
queue AS (
    SELECT count(*) AS others,
           count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM mine WHERE mine.waiting_since <= w.waiting_since)) AS ahead
      FROM biz.ai_inflight_waiter w
     WHERE w.pool = %(pool)s AND w.holder <> %(holder)s AND w.waiting_since IS NOT NULL
       AND w.seen_at > clock_timestamp() - make_interval(secs => %(live)s)),
took AS (
    UPDATE biz.ai_inflight_cap SET held = held + 1
     WHERE pool = %(pool)s
       AND held + (SELECT ahead FROM queue) < floor(LEAST(%(ceiling)s, GREATEST(%(floor)s, cap)))
    RETURNING pool),
lease AS (
    INSERT INTO biz.ai_inflight_lease (pool, holder, expires_at)
    SELECT pool, %(holder)s, clock_timestamp() + make_interval(secs => %(ttl)s) FROM took
    RETURNING id),
served AS (
    UPDATE biz.ai_inflight_waiter SET waiting_since = NULL
     WHERE pool = %(pool)s AND holder = %(holder)s AND waiting_since IS NOT NULL AND EXISTS (SELECT 1 FROM took)),
waits AS (
    INSERT INTO biz.ai_inflight_waiter AS w (pool, holder, waiting_since, seen_at)
    SELECT %(pool)s, %(holder)s, clock_timestamp(), clock_timestamp()
     WHERE %(queue)s AND NOT EXISTS (SELECT 1 FROM took)
       AND NOT EXISTS (SELECT 1 FROM biz.ai_inflight_waiter
                        WHERE pool = %(pool)s AND holder = %(holder)s AND waiting_since IS NOT NULL
                          AND seen_at > clock_timestamp() - make_interval(secs => %(refresh)s))
    ON CONFLICT (pool, holder) DO UPDATE
       SET waiting_since = CASE WHEN w.waiting_since IS NOT NULL
                                 AND w.seen_at > EXCLUDED.seen_at - make_interval(secs => %(live)s)
                                THEN w.waiting_since ELSE EXCLUDED.waiting_since END,
           seen_at = EXCLUDED.seen_at)
SELECT (SELECT id FROM lease) AS id, q.others, q.ahead,
       EXISTS (SELECT 1 FROM biz.ai_inflight_cap WHERE pool = %(pool)s) AS pooled
  FROM queue q
"""
# Leases past their expiry (a crashed holder's) stop counting.
_SWEEP = """
WITH gone AS (DELETE FROM biz.ai_inflight_lease WHERE pool = %(pool)s AND expires_at < clock_timestamp() RETURNING 1)
UPDATE biz.ai_inflight_cap SET held = GREATEST(0, held - (SELECT count(*) FROM gone))
 WHERE pool = %(pool)s AND EXISTS (SELECT 1 FROM gone)
RETURNING held
"""
# Queue rows of processes not seen for an hour (gone), dropped once per process. On its own,
# not in the sweep: the data-modifying parts of one statement run in no set order, and one
# locking queue rows before the pool's row could deadlock with a take (the pool's row first).
_FORGET = """
DELETE FROM biz.ai_inflight_waiter WHERE pool = %(pool)s AND seen_at < clock_timestamp() - interval '1 hour'
"""
# A poller that gave up (no thread of its process waits any more) leaves the queue.
_LEAVE = """
UPDATE biz.ai_inflight_waiter SET waiting_since = NULL
 WHERE pool = %(pool)s AND holder = %(holder)s AND waiting_since IS NOT NULL
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


def _one(conn: DictConnection, query: str, params: dict[str, object]) -> dict[str, Any]:
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError("the in-flight take returned no row")  # an aggregate: always one
    return row


@dataclass(frozen=True)
class _Attempt:
    lease: int | None
    others: int  # live waiting processes other than this one
    ahead: int  # ... of which waited longer than this one (all, when this one is not waiting)


class InflightCap:
    """The shared cap, seen from one process; thread-safe. ``holder`` names the process in the
    leases and the queue (host:pid; tests give two caps of one process different holders)."""

    def __init__(
        self,
        connect: Connect,
        settings: InflightSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        holder: str | None = None,
    ):
        self._connect = connect
        self.settings = settings
        self._clock = clock
        self._holder = holder or f"{socket.gethostname()}:{os.getpid()}"
        self._ensured = False
        self._swept_at: float | None = None
        self._turn = threading.Condition()  # waiting threads of this process, one polls at a time
        self._polling = False
        self._queued = 0  # threads of this process in ``acquire``
        self._freed = threading.Event()  # a lease of this process was released: poll now

    # -------------------------------------------------------------------------- acquire

    def acquire(self) -> int | None:
        """A lease id once a slot is free (and it is this process's turn), or None after
        ``max_wait_s`` without one."""
        deadline = self._clock() + self.settings.max_wait_s
        with self._turn:
            self._queued += 1
            while self._polling:
                if not self._turn.wait(timeout=max(deadline - self._clock(), 0)) and self._clock() >= deadline:
                    self._queued -= 1
                    return None
            self._polling = True
        gave_up = False
        try:
            lease = self._poll(deadline)
            gave_up = lease is None
            return lease
        finally:
            with self._turn:
                self._queued -= 1
                try:
                    if gave_up and self._queued == 0:
                        self._leave()  # no thread of this process waits on: out of the queue
                finally:
                    self._polling = False
                    self._turn.notify()

    def _poll(self, deadline: float) -> int | None:
        poll = _MIN_POLL_S
        while True:
            self._freed.clear()
            now = self._clock()
            sweep = self._swept_at is None or now - self._swept_at >= _SWEEP_EVERY_S
            attempt = self._attempt(queue=True, sweep=sweep)
            if attempt.lease is not None:
                return attempt.lease
            left = deadline - self._clock()
            if left <= 0:
                return None
            # Other processes waiting: the next free slot may be this one's turn, and no one
            # else takes it meanwhile. Look again soon (the further back, the later).
            wait = min(_CONTENDED_POLL_S * (1 + attempt.ahead), _MAX_POLL_S) if attempt.others else poll
            woken = self._freed.wait(timeout=min(wait, left))
            poll = _MIN_POLL_S if woken else min(poll * 2, _MAX_POLL_S)

    def try_acquire(self) -> int | None:
        """One attempt: a lease id, or None when the pool is full (or its free slots are the
        turns of processes waiting for them). It does not join the queue."""
        return self._attempt(queue=False, sweep=True).lease

    def _attempt(self, *, queue: bool, sweep: bool) -> _Attempt:
        params = self._params(queue=queue, live=self.settings.waiter_live_s, refresh=_REFRESH_S)
        with self._connect() as conn:
            if not self._ensured:
                conn.execute(_ENSURE, params)
                conn.execute(_FORGET, params)
                self._ensured = True
            row = _one(conn, _TAKE, params)
            if row["id"] is None and not row["pooled"]:
                conn.execute(_ENSURE, params)  # the pool's row is gone: made again
                row = _one(conn, _TAKE, params)
            if row["id"] is None and sweep:
                self._swept_at = self._clock()
                if conn.execute(_SWEEP, params).fetchone() is not None:
                    row = _one(conn, _TAKE, params)  # a crashed holder's slot came free
        lease = None if row["id"] is None else int(row["id"])
        return _Attempt(lease=lease, others=int(row["others"]), ahead=int(row["ahead"]))

    def _leave(self) -> None:
        with self._connect() as conn:
            conn.execute(_LEAVE, self._params())

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
