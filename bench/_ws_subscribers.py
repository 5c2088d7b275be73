"""Realtime subscribers for bench_realtime.py, in a process of their own.

    python bench/_ws_subscribers.py <ws_url> <token> <count> <out.json>

Opens ``count`` WebSocket connections to ``ws_url`` (``Authorization: Bearer``), prints
``connected``; prints ``ready`` once every connection has received an ``event_status`` message
whose payload has ``probe`` (the bench publishes one: proof that every subscription is
registered, with no sleep); then records the receipt time (``time.time()``) of every
``cache_updated`` message per connection until its standard input closes (the bench closes it),
and writes ``{"receipts": {cache_id: [receipt times]}, "closed_early": n}`` to ``out.json``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import defaultdict

import uvloop
from websockets.asyncio.client import ClientConnection, connect


class Subscribers:
    def __init__(self, count: int) -> None:
        self.count = count
        self.receipts: dict[int, list[float]] = defaultdict(list)
        self.probed = asyncio.Event()
        self.probes = 0
        self.closed_early = 0

    async def listen(self, ws: ClientConnection) -> None:
        saw_probe = False
        try:
            async for raw in ws:
                now = time.time()
                message = json.loads(raw)
                if message["type"] == "cache_updated":
                    self.receipts[message["payload"]["cache_id"]].append(now)
                elif message["type"] == "event_status" and message["payload"].get("probe") and not saw_probe:
                    saw_probe = True
                    self.probes += 1
                    if self.probes == self.count:
                        self.probed.set()
            self.closed_early += 1  # the server closed it
        except Exception:
            self.closed_early += 1


async def stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()  # returns at EOF


async def main(url: str, token: str, count: int, out: str) -> None:
    subscribers = Subscribers(count)
    headers = {"Authorization": f"Bearer {token}"}
    connections = await asyncio.gather(
        *(connect(url, additional_headers=headers, open_timeout=30) for _ in range(count))
    )
    print("connected", flush=True)
    tasks = [asyncio.create_task(subscribers.listen(ws)) for ws in connections]
    await subscribers.probed.wait()
    print("ready", flush=True)
    await stdin_closed()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"receipts": subscribers.receipts, "closed_early": subscribers.closed_early}, f)


if __name__ == "__main__":
    ws_url, bearer, n, path = sys.argv[1:5]
    uvloop.run(main(ws_url, bearer, int(n), path))
