"""Realtime subscribers for bench_realtime.py, in a process of their own.

    python bench/_ws_subscribers.py <ws_url> <token> <count> <expected> <out.json>

Opens ``count`` WebSocket connections to ``ws_url`` (``Authorization: Bearer``), prints
``connected``; prints ``ready`` once every connection has received an ``event_status`` message
whose payload has ``probe`` (the bench publishes one: proof that every subscription is
registered, with no sleep); then records the receipt time (``time.time()``) of every
``cache_updated`` message per connection until each has ``expected`` of them (or 120 s pass),
and writes ``{cache_id: [receipt times]}`` and the count of connections closed early to ``out.json``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict

import uvloop
from websockets.asyncio.client import connect


async def subscriber(
    url: str,
    token: str,
    expected: int,
    probed: asyncio.Event,
    counter: list[int],
    total: int,
    receipts: dict[int, list[float]],
    closed: list[int],
    opened: list[int],
) -> None:
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=30) as ws:
        opened[0] += 1
        got = 0
        saw_probe = False
        try:
            while got < expected:
                raw = await ws.recv()
                now = time.time()
                message = json.loads(raw)
                if message["type"] == "cache_updated":
                    receipts[message["payload"]["cache_id"]].append(now)
                    got += 1
                elif message["type"] == "event_status" and message["payload"].get("probe") and not saw_probe:
                    saw_probe = True
                    counter[0] += 1
                    if counter[0] == total:
                        probed.set()
        except Exception:
            closed[0] += 1


async def main(url: str, token: str, count: int, expected: int, out: str) -> None:
    receipts: dict[int, list[float]] = defaultdict(list)
    probed = asyncio.Event()
    counter, closed, opened = [0], [0], [0]
    tasks = [
        asyncio.create_task(subscriber(url, token, expected, probed, counter, count, receipts, closed, opened))
        for _ in range(count)
    ]
    while opened[0] < count:
        done = [t for t in tasks if t.done() and t.exception()]
        if done:
            raise done[0].exception()  # type: ignore[misc]
        await asyncio.sleep(0.01)
    print("connected", flush=True)
    await probed.wait()
    print("ready", flush=True)
    await asyncio.wait(tasks, timeout=120)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"receipts": receipts, "closed_early": closed[0]}, f)


if __name__ == "__main__":
    ws_url, bearer, n, expect, path = sys.argv[1:6]
    uvloop.run(main(ws_url, bearer, int(n), int(expect), path))
