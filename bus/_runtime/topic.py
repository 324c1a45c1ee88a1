"""In-process publish/subscribe with bounded subscriber buffers.

Publishing never waits. Each subscriber has its own buffer of ``max_buffer``
items; what happens when it is full is the subscriber's stated ``overflow`` policy:

- ``"close"`` (default): the subscription ends with :class:`SubscriberLagged`
  after the items it already holds, carrying how many it missed. Nothing is
  skipped silently; a follower re-reads from the log and subscribes again.
- ``"drop_oldest"``: the oldest buffered item is discarded (counted in ``dropped``).
- ``"drop_newest"``: the new item is discarded (counted in ``dropped``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Literal

from .._errors import SubscriberLagged

__all__ = ["Overflow", "Subscription", "Topic"]

Overflow = Literal["close", "drop_oldest", "drop_newest"]
_END = object()


class Subscription:
    """One subscriber's bounded buffer; iterate it with ``async for``.

    Attributes:
        dropped: Items this subscriber missed because its buffer was full.
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_error",
        "_topic",
        "_waiter",
        "dropped",
        "max_buffer",
        "overflow",
    )

    def __init__(self, topic: Topic, max_buffer: int, overflow: Overflow) -> None:
        if max_buffer < 1:
            raise ValueError("max_buffer must be at least 1")
        self._topic = topic
        self._buffer: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._error: BaseException | None = None
        self.max_buffer = max_buffer
        self.overflow = overflow
        self.dropped = 0

    def _offer(self, item: Any) -> bool:
        """Take an item from the topic; return False when this subscription ended."""
        buffer = self._buffer
        if len(buffer) >= self.max_buffer:
            if self.overflow == "drop_oldest":
                buffer.popleft()
                self.dropped += 1
            elif self.overflow == "drop_newest":
                self.dropped += 1
                return True
            else:
                self.dropped += 1
                self._end(
                    SubscriberLagged(
                        f"subscriber of {self._topic.name!r} fell behind by more than "
                        f"{self.max_buffer} items",
                        dropped=self.dropped,
                    )
                )
                return False
        buffer.append(item)
        self._wake()
        return True

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end(self, error: BaseException | None) -> None:
        if not self._closed:
            self._closed = True
            self._error = error
            self._wake()

    def pending(self) -> int:
        """Items buffered and not yet taken."""
        return len(self._buffer)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        while not self._buffer:
            if self._closed:
                if self._error is not None:
                    error, self._error = self._error, None
                    raise error
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._buffer.popleft()

    def get_nowait(self) -> Any:
        """Take one buffered item, or raise :class:`LookupError` when empty."""
        if not self._buffer:
            raise LookupError("no item buffered")
        return self._buffer.popleft()

    async def aclose(self) -> None:
        """Stop receiving; buffered items are discarded."""
        self._topic._remove(self)
        self._buffer.clear()
        self._end(None)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class Topic:
    """A named stream that any number of subscribers follow."""

    __slots__ = ("_closed", "_subscribers", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._subscribers: list[Subscription] = []
        # Set once by close(); a closed topic hands out only ended subscriptions.
        self._closed = False

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscribers)

    def subscribe(self, *, max_buffer: int = 1024, overflow: Overflow = "close") -> Subscription:
        """Open a subscription that receives every item published from now on."""
        if overflow not in ("close", "drop_oldest", "drop_newest"):
            raise ValueError(f"unknown overflow policy {overflow!r}")
        sub = Subscription(self, max_buffer, overflow)
        if self._closed:
            sub._end(None)  # nothing will ever be published: iterating ends at once
        else:
            self._subscribers.append(sub)
        return sub

    def publish(self, item: Any) -> int:
        """Offer ``item`` to every subscriber without waiting; return how many took it."""
        subs = self._subscribers
        if not subs:
            return 0
        delivered = 0
        ended = None
        for sub in subs:
            if sub._offer(item):
                delivered += 1
            else:
                ended = ended or []
                ended.append(sub)
        if ended:
            self._subscribers = [s for s in subs if s not in ended]
        return delivered

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers = [s for s in self._subscribers if s is not sub]

    def close(self) -> None:
        """End every subscription (the bus is closing), and any opened later."""
        self._closed = True
        for sub in self._subscribers:
            sub._end(None)
        self._subscribers = []
