"""How often one merchant, one address or one account may do something: sliding windows in this process.

Each API instance counts on its own, so behind a balancer over N instances a client gets at most N times the
limit; the limits are set with that in mind (and the overload notice still guards Rasa). A refusal says how many
seconds to wait, for ``Retry-After`` and for the Chinese message.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque


class RateLimiter:
    MAX_KEYS = 100_000  # beyond this, keys with no recent hit are forgotten

    def __init__(self):
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, window: float, now: float) -> deque[float]:
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window:
            hits.popleft()
        return hits

    def hit(self, key: str, limit: int, window: float) -> int:
        """Count one more for ``key``; 0 when it is allowed, else the whole seconds until it would be."""
        now = time.monotonic()
        with self._lock:
            hits = self._recent(key, window, now)
            if len(hits) >= limit:
                return max(1, math.ceil(hits[0] + window - now))
            hits.append(now)
            if len(self._hits) > self.MAX_KEYS:
                self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - 3600}
            return 0

    def wait(self, key: str, limit: int, window: float) -> int:
        """Like ``hit`` but counts nothing: is ``key`` over its limit now?"""
        now = time.monotonic()
        with self._lock:
            hits = self._recent(key, window, now)
            return max(1, math.ceil(hits[0] + window - now)) if len(hits) >= limit else 0

    def clear(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)
