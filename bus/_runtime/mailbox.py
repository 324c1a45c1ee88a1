"""An actor's mailbox: a bounded queue of told and asked messages, and waiting for room.

A tell is queued as the bare message, so the common case allocates nothing; an ask
as an :class:`Ask`, the message with the future its reply completes.

The fast path is two C calls on :attr:`Mailbox.queue`, a plain ``deque``: a
producer checks ``len(queue) < mailbox.limit`` and appends; ``ActorRef.tell`` and
``ask`` inline exactly that (a method call per message would cost more than the
check itself), and the drain loops bind ``queue.popleft`` once. ``limit`` folds
"does the actor take mail" into the room check, so that check is the only one the
fast path makes. Everything else, waiting for room and waking those who wait, is
behind :class:`Mailbox`'s methods.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

import msgspec

from .._errors import AskTimeout

__all__ = ["Ask", "Mailbox", "expire", "fail", "unpack"]


class Ask(msgspec.Struct):
    """An ask in a mailbox: the message and the future its reply completes.

    A msgspec Struct because it is built in C: half the cost of a slotted class.
    Named apart from ``bus.Request``, the socket protocol's request.
    """

    message: Any
    fut: asyncio.Future[Any]


def unpack(item: Any) -> tuple[Any, asyncio.Future[Any] | None]:
    """Split a mailbox item into the message and its reply future (``None``: a tell)."""
    if type(item) is Ask:
        return item.message, item.fut
    return item, None


def expire(fut: asyncio.Future[Any], label: str, timeout: float) -> None:
    """Fail an unanswered ``fut`` with :class:`AskTimeout` (a timer's callback)."""
    if not fut.done():
        fut.set_exception(AskTimeout(f"{label} did not answer within {timeout:g}s"))


def fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    """Fail an ask's future with what its handler raised, unless it is answered."""
    if fut.done():
        return
    if isinstance(exc, StopIteration | StopAsyncIteration):
        exc = RuntimeError(f"handler raised {type(exc).__name__}")
    fut.set_exception(exc)


class Mailbox:
    """The queue of one actor instance, its bound, and the producers waiting for room.

    Loop thread only. Fields:

    - ``queue``: tells as bare messages and asks as :class:`Ask`, in arrival order.
      Producers append (after checking the room); only the activation takes items
      out, and each item it takes wakes one producer waiting for room.
    - ``capacity``: the bound producers keep to (the deque itself is unbounded: a
      ``maxlen`` would drop the oldest). Never changes.
    - ``limit``: ``capacity`` while the cell takes mail, 0 from the moment it stops
      doing so (:meth:`shut`, called by the cell's change of state); never back.
      The producers' fast path compares with it; below it they append at once.
    - ``waiters``: the futures of producers waiting for room, oldest first; a
      waiter is woken by having its future's result set, and removed by whoever
      wakes it or by itself when it gives up.
    """

    __slots__ = ("capacity", "limit", "queue", "waiters")

    def __init__(self, capacity: int) -> None:
        self.queue: deque[Any] = deque()
        self.capacity = capacity
        self.limit = capacity
        self.waiters: deque[asyncio.Future[None]] = deque()

    def full(self) -> bool:
        """Whether the queue is at its bound (whether or not the cell takes mail)."""
        return len(self.queue) >= self.capacity

    def shut(self) -> None:
        """The cell takes no more mail: no producer takes the fast path from now on."""
        self.limit = 0

    def take(self, size: int) -> list[Any]:
        """Take up to ``size`` items, oldest first, waking a producer for each."""
        queue = self.queue
        if len(queue) <= size:
            items = list(queue)  # the whole queue in one C call
            queue.clear()
        else:
            popleft = queue.popleft
            items = [popleft() for _ in range(size)]
        if self.waiters:
            for _ in range(len(items)):
                self.wake_one()
        return items

    async def wait_for_space(
        self,
        loop: asyncio.AbstractEventLoop,
        label: str,
        deadline: float | None = None,
        timeout: float | None = None,
    ) -> None:
        """Wait until the activation takes an item out of the full queue.

        Args:
            loop: The loop the mailbox lives on.
            label: The actor's name, for the timeout's message.
            deadline: Loop time after which to fail with :class:`AskTimeout`.
            timeout: The asker's timeout, for the error message.
        """
        fut: asyncio.Future[None] = loop.create_future()
        self.waiters.append(fut)
        handle = None
        if deadline is not None:
            handle = loop.call_at(deadline, expire, fut, label, timeout or 0.0)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.wake_one()  # pass the wake-up on; this waiter will not use it
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(fut)
            raise
        except AskTimeout:
            with contextlib.suppress(ValueError):
                self.waiters.remove(fut)
            raise
        finally:
            if handle is not None:
                handle.cancel()

    def wake_one(self) -> None:
        """Wake the oldest producer still waiting for room."""
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def wake_all(self) -> None:
        """Release every producer waiting for room (the actor stopped or the bus closed)."""
        waiters = self.waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
