"""How an API worker sets Python's garbage collector for a heap that is mostly long-lived.

Two measured costs (docs/benchmarks.md, "API import and read throughput" and "Realtime"):

- The startup heap (pydantic models, routes, the LLM layer) lives as long as the app. Frozen,
  the collector stops scanning it: ~81k tracked objects, whose full collection took ~36 ms, a
  stall for every request in flight next to a p99 goal of 50 ms.
- Full collections come every 10 collections of generation 1: 2-3 a second under the read load,
  each walking every object not frozen. WebSocket subscribers are long-lived too (~200 tracked
  objects a connection: protocol, parser, scope, tasks); with 200 connected, gen2 held ~50k
  objects and the full collections took 0.35-0.44 s of each 7 s read window (5-6 % of the
  worker) and pushed the reads' p99 from ~9 to 25-35 ms. One full collection every 100 of
  generation 1 brought that to 0.015-0.04 s and the p99 back to ~10 ms. Cycles still get
  collected, only later; memory per subscriber did not move (49-53 KiB).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

FULL_COLLECTION_EVERY = 100  # collections of generation 1 between two full ones (Python's default: 10)


@contextmanager
def long_lived_heap() -> Iterator[None]:
    """Freeze what exists now and space out full collections; both undone on exit, so an app built
    again in the same process (tests) neither pins this one nor inherits the setting."""
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], FULL_COLLECTION_EVERY)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
