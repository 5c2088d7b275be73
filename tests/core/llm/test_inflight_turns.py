"""Fair turns between processes at the shared in-flight cap (``core/llm/inflight.py``): a free
slot goes to the process that has waited longest, not to the one whose lease was released.

Two ``InflightCap`` objects with different holders stand for two processes over one pool.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

import pytest

from tests.api.realtime_support import wait_until
from zqyy_assets.core import db
from zqyy_assets.core.llm.inflight import InflightCap, InflightSettings

# A wide liveness window: a poller stalled for seconds on a loaded machine keeps its place here
# (the window itself is tested by moving the rows' clock).
LIVE_S = 30.0


def _cap(db_url: str, holder: str, slots: int, **settings: float) -> InflightCap:
    defaults: dict[str, float] = {"max_wait_s": 60.0, "waiter_live_s": LIVE_S}
    return InflightCap(
        lambda: db.connect(db_url, autocommit=True),
        InflightSettings(start=slots, floor=1, ceiling=slots, **{**defaults, **settings}),  # type: ignore[arg-type]
        holder=holder,
    )


def _waiting(db_url: str) -> dict[str, datetime]:
    """The processes waiting now, and since when."""
    with db.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT holder, waiting_since FROM biz.ai_inflight_waiter WHERE waiting_since IS NOT NULL"
        ).fetchall()
    return {r["holder"]: r["waiting_since"] for r in rows}


def _held(db_url: str) -> int:
    with db.connect(db_url) as conn:
        return conn.execute("SELECT held FROM biz.ai_inflight_cap").fetchone()["held"]


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as pool:
        yield pool


def test_a_freed_slot_goes_to_the_process_that_waited_and_the_turns_go_round(db_url, threads):
    a, b = _cap(db_url, "host-a:1", 2), _cap(db_url, "host-b:2", 2)
    a1, a2 = a.try_acquire(), a.try_acquire()
    assert a1 is not None and a2 is not None  # A holds the whole pool
    b_first: Future[int | None] = threads.submit(b.acquire)
    wait_until(lambda: "host-b:2" in _waiting(db_url), what="B waiting")

    # A's lease ends and A asks again at once (its poller is woken by its own release): the
    # slot is B's turn, A waits behind B.
    a.release(a1, "success")
    a_next = threads.submit(a.acquire)
    b1 = b_first.result(timeout=30)
    assert b1 is not None
    wait_until(lambda: "host-a:1" in _waiting(db_url), what="A waiting")
    assert not a_next.done() and _held(db_url) == 2

    # B asks for another slot and joins the queue behind A; then B's own lease ends: the slot
    # is A's turn although B's poller is the one woken.
    b_next = threads.submit(b.acquire)
    wait_until(lambda: "host-b:2" in _waiting(db_url), what="B waiting again")
    queue = _waiting(db_url)
    assert queue["host-a:1"] < queue["host-b:2"]
    b.release(b1, "success")
    a3 = a_next.result(timeout=30)
    assert a3 is not None
    assert not b_next.done() and _held(db_url) == 2
    assert set(_waiting(db_url)) == {"host-b:2"}  # A's wait ended with its turn

    a.release(a2, "success")
    b2 = b_next.result(timeout=30)
    assert b2 is not None and _waiting(db_url) == {}
    for cap, lease in ((a, a3), (b, b2)):
        cap.release(lease, "success")
    assert _held(db_url) == 0


def test_free_slots_are_kept_for_the_waiting_processes_until_a_stale_one_stops_counting(db_url):
    with db.connect(db_url, autocommit=True) as conn:  # a process that waited, then crashed
        conn.execute(
            "INSERT INTO biz.ai_inflight_waiter (pool, holder, waiting_since, seen_at)"
            " VALUES ('dashscope', 'gone:9', clock_timestamp(), clock_timestamp())"
        )
    a = _cap(db_url, "host-a:1", 2)
    first = a.try_acquire()
    assert first is not None  # one slot free beyond the waiting process's turn
    assert a.try_acquire() is None  # the other is its turn, while it counts as alive

    with db.connect(db_url, autocommit=True) as conn:  # its liveness window passes unseen
        conn.execute("UPDATE biz.ai_inflight_waiter SET seen_at = seen_at - make_interval(secs => %s)", (LIVE_S + 1,))
    assert a.try_acquire() is not None
    assert set(_waiting(db_url)) == {"gone:9"}  # not counted, but kept

    with db.connect(db_url, autocommit=True) as conn:  # an hour later
        conn.execute("UPDATE biz.ai_inflight_waiter SET seen_at = seen_at - interval '1 hour'")
    assert _cap(db_url, "host-c:3", 2).try_acquire() is None  # the pool is full (a holds 2)...
    assert _waiting(db_url) == {}  # ...and the first use of a process forgot the gone one


def test_a_process_that_stops_waiting_leaves_the_queue(db_url):
    a, b = _cap(db_url, "host-a:1", 1), _cap(db_url, "host-b:2", 1, max_wait_s=0.05)
    held = a.try_acquire()
    assert held is not None
    assert b.acquire() is None  # B gave up waiting: out of the queue
    assert _waiting(db_url) == {}

    a.release(held, "success")
    assert a.try_acquire() is not None  # nobody's turn to keep the slot for


def test_a_process_waiting_behind_others_polls_without_backing_off(db_url):
    """While another process waits too, a slot freed may be this one's turn soon: the poller
    looks every 5 ms per process ahead of it; alone, it backs off towards 100 ms as before."""
    a = _cap(db_url, "host-a:1", 1)
    assert a.try_acquire() is not None

    def poll_waits(*, others_waiting: bool) -> list[float]:
        now = [0.0]

        def clock() -> float:  # every look at the clock is 10 ms later: about 20 polls
            now[0] += 0.01
            return now[0]

        b = InflightCap(
            lambda: db.connect(db_url, autocommit=True),
            InflightSettings(start=1, ceiling=1, max_wait_s=0.6, waiter_live_s=LIVE_S),
            holder="host-b:2",
            clock=clock,
        )
        waits: list[float] = []
        b._freed = _RecordingEvent(waits)  # type: ignore[assignment]
        with db.connect(db_url, autocommit=True) as conn:  # C waits, or no one
            conn.execute("DELETE FROM biz.ai_inflight_waiter")
            if others_waiting:
                conn.execute(
                    "INSERT INTO biz.ai_inflight_waiter (pool, holder, waiting_since, seen_at)"
                    " VALUES ('dashscope', 'host-c:3', clock_timestamp(), clock_timestamp())"
                )
        assert b.acquire() is None
        return waits

    contended = poll_waits(others_waiting=True)
    assert len(contended) >= 5 and max(contended) <= 0.010 + 1e-9, contended  # C is ahead: 2 x 5 ms
    alone = poll_waits(others_waiting=False)
    assert alone[:5] == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08]), alone


class _RecordingEvent(threading.Event):
    def __init__(self, waits: list[float]) -> None:
        super().__init__()
        self._waits = waits

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self._waits.append(round(timeout, 6))
        return super().wait(0)  # the poll's wait, not spent: the test's clock moves instead
