"""How often one merchant, one address or one account may do something: sliding windows.

``RateLimiter`` counts in this process. With Redis configured, ``SharedRateLimiter`` counts in Redis, so every
API instance behind a balancer sees the same windows (a client gets the limit once, not once per instance); if
Redis cannot be reached, it counts in this process meanwhile rather than refusing or letting everything through.
A refusal says how many seconds to wait, for ``Retry-After`` and for the Chinese message.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
import uuid
from collections import deque


class RateLimiter:
    remote = False  # counting is a network call: async callers hop to the threadpool first
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


# One sliding window in a sorted set: drop what left the window, refuse when full (seconds until the oldest hit
# leaves it), else record this hit. Redis's own clock, so instances on several machines agree.
_WINDOW = """
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window, limit = tonumber(ARGV[2]), tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
  return math.max(1, math.ceil((oldest + window - ms) / 1000))
end
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], ms, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
end
return 0
"""


class SharedRateLimiter(RateLimiter):
    """The same windows, kept in Redis for every API instance; this process's own count while Redis fails."""

    remote = True
    PREFIX = "sjzs-limit:"

    def __init__(self, url: str):
        import redis

        super().__init__()
        self._errors = (redis.RedisError, OSError)
        self._redis = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._window = self._redis.register_script(_WINDOW)
        self._seq = itertools.count()

    def _shared(self, key: str, limit: int, window: float, count: bool) -> int | None:
        member = f"{uuid.uuid4().hex}:{next(self._seq)}"
        try:
            return int(self._window(keys=[self.PREFIX + key],
                                    args=[limit, int(window * 1000), "1" if count else "0", member]))
        except self._errors:
            return None

    def hit(self, key: str, limit: int, window: float) -> int:
        wait = self._shared(key, limit, window, count=True)
        return super().hit(key, limit, window) if wait is None else wait

    def wait(self, key: str, limit: int, window: float) -> int:
        wait = self._shared(key, limit, window, count=False)
        return super().wait(key, limit, window) if wait is None else wait

    def clear(self, key: str) -> None:
        super().clear(key)
        with contextlib.suppress(*self._errors):
            self._redis.delete(self.PREFIX + key)
