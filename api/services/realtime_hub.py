"""One API worker's realtime hub: one LISTEN connection, fanned out to this worker's subscribers.

Every worker runs its own hub (no coordination between workers): the outbox (``biz.realtime_outbox``,
:mod:`zqyy_assets.core.outbox`) is the truth and ``NOTIFY zqyy_realtime, '<site_id>'`` only says
"site N has new rows". On a wake-up for a site with subscribers here, the hub reads that site's
rows past the last seq it delivered and offers each to the site's subscribers. Since seq follows
commit order per site, "past the last seq" never skips a row that commits later, and a lost or
folded notification costs nothing but latency: the next wake-up (or the periodic catch-up) reads
the same rows. A dropped LISTEN connection is reconnected and every tracked site caught up.

Each message is encoded once as a WebSocket frame. A subscriber starts with a bounded queue
(its route sends from it through ASGI, after any ``since`` replay); once the queue is empty and
the server offers a frame writer (:mod:`api.ws_frames`), the hub writes the frame to the
subscriber's connection itself, with no hop through the queue. Either way a client slower than
the messages is marked overflowed (a full queue, or more unsent bytes than
``REALTIME_SEND_BUFFER_MAX_BYTES``) and its route closes it with 4408; nothing else waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg

from api.services import Pool
from api.ws_frames import FrameWriter, text_frame
from zqyy_assets.core import outbox
from zqyy_assets.core.settings import RealtimeSettings

log = logging.getLogger(__name__)

_READ_BATCH = 1000
_RECONNECT_DELAY_S = 1.0  # a retry delay after a lost LISTEN connection, not a synchronisation
_CATCH_UP_INTERVAL_S = 5.0  # belt and braces: re-read tracked sites even with no notification
_STOP_RECANCEL_S = 0.2


class Subscriber:
    """One client: its message types, the seq it has seen, and how its messages reach it."""

    def __init__(self, site_id: int, types: frozenset[str], settings: RealtimeSettings, after: int = 0) -> None:
        self.site_id = site_id
        self.types = types
        self.after = after  # a reconnecting client's `since`: it has every message up to this seq
        self.queue: asyncio.Queue[outbox.Message] = asyncio.Queue(settings.realtime_queue_max)
        self.overflowed = asyncio.Event()
        self.floor = 0  # the site's last seq when it subscribed: live messages are above it
        self._unsent_max = settings.realtime_send_buffer_max_bytes
        self._writer: FrameWriter | None = None

    @property
    def direct(self) -> bool:
        """True once the hub writes this subscriber's frames itself."""
        return self._writer is not None

    def write_directly(self, writer: FrameWriter) -> None:
        """From now on the hub writes this subscriber's frames to its connection (queue drained)."""
        if not self.queue.empty():
            raise RuntimeError("a subscriber goes direct only once its queue is drained")
        self._writer = writer

    def offer(self, message: outbox.Message, frame: bytes) -> None:
        if message.type not in self.types or message.seq <= self.after or self.overflowed.is_set():
            return
        if self._writer is not None:
            # A closing connection takes nothing more; its route is ending and unsubscribes.
            if self._writer.write(frame) and self._writer.unsent_bytes() > self._unsent_max:
                self.overflowed.set()
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed.set()


@dataclass
class _Site:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    subscribers: set[Subscriber] = field(default_factory=set)
    last_seq: int | None = None  # the last seq offered to the subscribers; None until known
    dirty: bool = False
    drain: asyncio.Task[None] | None = None


class RealtimeHub:
    def __init__(self, database_url: str, pool: Pool, settings: RealtimeSettings) -> None:
        self._url = database_url
        self._pool = pool
        self._settings = settings
        self._sites: dict[int, _Site] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.listening = asyncio.Event()  # set while the LISTEN connection is up (tests, health)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="realtime-listen"),
            asyncio.create_task(self._housekeeping(), name="realtime-housekeeping"),
        ]

    async def stop(self) -> None:
        drains = [s.drain for s in self._sites.values() if s.drain is not None]
        for task in [*self._tasks, *drains]:
            task.cancel()
        for task in [*self._tasks, *drains]:
            # A cancellation landing inside a driver or pool call can come back as the driver's own
            # error, which the loops log and survive (seen: an app stopped during its first purge
            # never stopped): cancel again until the task has ended.
            while not task.done():
                await asyncio.wait([task], timeout=_STOP_RECANCEL_S)
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ------------------------------------------------------------------ subscribers

    async def subscribe(self, site_id: int, types: frozenset[str], after: int = 0) -> Subscriber:
        """Register a subscriber; its ``floor`` is the site's last seq at that moment.

        Everything committed after ``floor`` (and after ``after``) reaches its queue; what came
        before (a ``since`` replay) the caller reads from the outbox up to ``floor``."""
        subscriber = Subscriber(site_id, types, self._settings, after)
        while True:
            site = self._sites.setdefault(site_id, _Site())
            async with site.lock:
                if self._sites.get(site_id) is not site:
                    continue  # the last subscriber left while we waited: start over on the new entry
                if site.last_seq is None:
                    # Tracked (in _sites) before this read: a wake-up during it waits for the lock
                    # and then reads past what this read saw, so nothing falls between the two.
                    async with self._pool.connection() as conn:
                        row = await (await conn.execute(outbox.LAST_SEQ_SQL, (site_id,))).fetchone()
                    site.last_seq = int(row["last_seq"]) if row else 0
                subscriber.floor = site.last_seq
                site.subscribers.add(subscriber)
                return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        site = self._sites.get(subscriber.site_id)
        if site is None:
            return
        site.subscribers.discard(subscriber)
        if not site.subscribers and not site.lock.locked():
            del self._sites[subscriber.site_id]
            if site.drain is not None:
                site.drain.cancel()

    def subscriber_count(self) -> int:
        return sum(len(s.subscribers) for s in self._sites.values())

    def subscribers(self) -> list[Subscriber]:
        """This worker's subscribers now (tests, diagnostics)."""
        return [subscriber for site in self._sites.values() for subscriber in site.subscribers]

    # ------------------------------------------------------------------ delivery

    def wake(self, site_id: int) -> None:
        """New rows may exist for ``site_id``: read and deliver them (coalesced per site)."""
        site = self._sites.get(site_id)
        if site is None:
            return  # nobody here listens to this site
        site.dirty = True
        if site.drain is None or site.drain.done():
            site.drain = asyncio.create_task(self._drain(site_id, site), name=f"realtime-drain-{site_id}")

    async def _drain(self, site_id: int, site: _Site) -> None:
        try:
            while site.dirty:
                site.dirty = False
                async with site.lock:
                    if site.last_seq is None or self._sites.get(site_id) is not site:
                        return
                    while True:
                        async with self._pool.connection() as conn:
                            cur = await conn.execute(
                                outbox.READ_AFTER_SQL,
                                {
                                    "site_id": site_id,
                                    "after": site.last_seq,
                                    "upto": outbox.NO_LIMIT,
                                    "limit": _READ_BATCH,
                                },
                            )
                            rows = await cur.fetchall()
                        for row in rows:
                            message = outbox.Message.from_row(row)
                            site.last_seq = message.seq
                            frame = text_frame(message.text)  # once, for every subscriber
                            for subscriber in site.subscribers:
                                subscriber.offer(message, frame)
                        if len(rows) < _READ_BATCH:
                            break
            if not site.subscribers and self._sites.get(site_id) is site and not site.lock.locked():
                del self._sites[site_id]  # its last subscriber left while this drain held the lock
        except asyncio.CancelledError:
            raise
        except Exception:
            # A failed read loses nothing (last_seq did not move past it): retry on the next wake-up.
            log.exception("realtime: reading the outbox of site %s failed", site_id)

    async def _listen(self) -> None:
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {outbox.CHANNEL}")
                    self.listening.set()
                    for site_id in list(self._sites):  # whatever committed while we were not listening
                        self.wake(site_id)
                    async for notification in conn.notifies():
                        if notification.payload.isdigit():
                            self.wake(int(notification.payload))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("realtime: LISTEN connection lost; reconnecting", exc_info=True)
            self.listening.clear()
            await asyncio.sleep(_RECONNECT_DELAY_S)

    async def _housekeeping(self) -> None:
        """Catch up every tracked site now and then, and purge the outbox past its retention."""
        retention = timedelta(hours=self._settings.realtime_retention_hours)
        loop = asyncio.get_running_loop()
        next_purge = loop.time()
        while True:
            for site_id in list(self._sites):
                self.wake(site_id)
            if loop.time() >= next_purge:
                next_purge = loop.time() + self._settings.realtime_purge_interval_s
                try:
                    async with self._pool.connection() as conn:
                        cur = await conn.execute(outbox.PURGE_SQL, (retention,))
                    if cur.rowcount:
                        log.info("realtime: purged %s outbox rows older than %s", cur.rowcount, retention)
                except Exception:
                    log.warning("realtime: outbox purge failed", exc_info=True)
            await asyncio.sleep(_CATCH_UP_INTERVAL_S)
