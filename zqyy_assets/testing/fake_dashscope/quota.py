"""The provider's limit: above ``qps`` requests in one second the fake answers 429
``Throttling.RateQuota``, as Bailian does (its per-minute quota is enforced per second).

The window is the wall clock's second; a throttled request answers at once and does not count
against the window. ``stats()`` (also ``GET /_fake/quota``) tells how many requests were
admitted and throttled, and the most in flight at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from zqyy_assets.testing.fake_common.scripts import Step, parse_step

THROTTLED: Step = parse_step("429")


class ProviderQuota:
    def __init__(self, qps: float, *, clock: Callable[[], float] = time.time) -> None:
        if qps <= 0:
            raise ValueError(f"qps must be above 0, got {qps}")
        self.qps = qps
        self._clock = clock
        self._lock = threading.Lock()
        self._window = -1
        self._in_window = 0
        self.admitted = self.throttled = 0
        self._in_flight = self.peak_in_flight = 0

    def admit(self) -> bool:
        """Count one request; False when its second already had ``qps`` of them."""
        second = math.floor(self._clock())
        with self._lock:
            if second != self._window:
                self._window, self._in_window = second, 0
            if self._in_window >= self.qps:
                self.throttled += 1
                return False
            self._in_window += 1
            self.admitted += 1
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            return True

    def done(self) -> None:
        """An admitted request has been answered."""
        with self._lock:
            self._in_flight -= 1

    def stats(self) -> dict[str, float]:
        with self._lock:
            return {
                "qps": self.qps,
                "admitted": self.admitted,
                "throttled": self.throttled,
                "peak_in_flight": self.peak_in_flight,
            }

    def reset(self) -> None:
        with self._lock:
            self.admitted = self.throttled = self.peak_in_flight = 0
