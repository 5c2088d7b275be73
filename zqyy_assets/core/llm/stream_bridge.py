"""A blocking generator consumed from asyncio, one step at a time in a worker thread.

No queue and no second event loop: the generator is advanced with ``asyncio.to_thread(next,
...)``. If the consumer goes away mid-stream, the generator is closed in a thread once its
current step ends (its ``finally`` blocks run there: the chat stream books the partial answer).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Generator
from typing import TypeVar, cast

T = TypeVar("T")
_END = object()


async def iterate_in_threads(gen: Generator[T, None, None]) -> AsyncIterator[T]:
    step_lock = threading.Lock()  # a close must wait for the step in flight
    exhausted = False

    def step() -> object:
        with step_lock:
            return next(gen, _END)

    def close() -> None:
        with step_lock:
            gen.close()

    try:
        while True:
            try:
                item = await asyncio.to_thread(step)
            except Exception:
                exhausted = True  # the generator raised, so it is finished
                raise
            if item is _END:
                exhausted = True
                return
            yield cast(T, item)
    finally:
        if not exhausted:
            threading.Thread(target=close, name="zqyy-llm-stream-close", daemon=True).start()
