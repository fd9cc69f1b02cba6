"""Server pushes: events fan out to the open connections subscribed to a channel.

Channels are plain strings: ``conv:<id>`` (a conversation's messages, typing, mode), ``merchant:<id>``
(服务进度提醒). With ``redis_url`` set, events travel through Redis pub/sub so that every API instance
delivers them to its own connections; without it, they stay inside this process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections import defaultdict

log = logging.getLogger(__name__)
PREFIX = "sjzs:"


class Subscription:
    """One connection's inbox; channels can be added as the connection learns its conversation."""

    def __init__(self, hub: Hub):
        self.hub = hub
        self.channels: set[str] = set()
        self.queue: asyncio.Queue[dict] = asyncio.Queue(maxsize=1000)

    def add(self, channel: str) -> None:
        if channel not in self.channels:
            self.channels.add(channel)
            self.hub._listeners[channel].add(self)

    def remove(self, channel: str) -> None:
        self.channels.discard(channel)
        listeners = self.hub._listeners.get(channel)
        if listeners is not None:
            listeners.discard(self)
            if not listeners:
                del self.hub._listeners[channel]

    def close(self) -> None:
        for channel in list(self.channels):
            self.remove(channel)

    async def get(self) -> dict:
        return await self.queue.get()


class Hub:
    def __init__(self, redis_url: str = ""):
        self.redis_url = redis_url
        self._listeners: dict[str, set[Subscription]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._outbox: asyncio.Queue[tuple[str, dict]] | None = None
        self._tasks: list[asyncio.Task] = []
        self._redis = None

    async def start(self) -> None:
        """Bind to the running loop; with Redis, connect and listen for every instance's events."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._outbox = asyncio.Queue()
        if self.redis_url:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self.redis_url)
            pubsub = self._redis.pubsub()
            await pubsub.psubscribe(f"{PREFIX}*")
            self._tasks.append(asyncio.create_task(self._listen(pubsub)))
        self._tasks.append(asyncio.create_task(self._pump()))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    def subscribe(self, *channels: str) -> Subscription:
        sub = Subscription(self)
        for channel in channels:
            sub.add(channel)
        return sub

    def publish(self, channel: str, event: dict) -> None:
        """Queue an event; safe from the event loop and from the threads that run sync routes.

        Events leave in the order they were published.
        """
        if self._loop is None or self._outbox is None:
            return  # not started (e.g. a unit test without lifespan): nobody can be listening
        item = (channel, event)
        if threading.get_ident() == self._loop_thread:
            self._outbox.put_nowait(item)
        else:
            self._loop.call_soon_threadsafe(self._outbox.put_nowait, item)

    async def _pump(self) -> None:
        assert self._outbox is not None
        while True:
            channel, event = await self._outbox.get()
            if self._redis is None:
                self._deliver(channel, event)
                continue
            try:
                await self._redis.publish(PREFIX + channel, json.dumps(event, ensure_ascii=False, default=str))
            except Exception:  # Redis gone: this instance's connections still get the event
                log.exception("Redis publish failed; delivering locally only")
                self._deliver(channel, event)

    async def _listen(self, pubsub) -> None:
        async for item in pubsub.listen():
            if item.get("type") != "pmessage":
                continue
            channel = item["channel"].decode()[len(PREFIX):]
            try:
                self._deliver(channel, json.loads(item["data"]))
            except ValueError:
                log.warning("dropped a malformed event on %s", channel)

    def _deliver(self, channel: str, event: dict) -> None:
        for sub in list(self._listeners.get(channel, ())):
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:  # a stalled connection: it reloads history when it comes back
                log.warning("dropped an event for a stalled connection on %s", channel)
