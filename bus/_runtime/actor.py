"""The actor base class and the reference producers hold.

An :class:`ActorRef` points at a cell (``cell.py``). Its ``tell`` and ``ask`` inline
the fast path (the cell is open and its mailbox has room: append, activate if
idle) because a call more per message would show in the rate; everything else
goes through the cell's producer methods: ``resolve``, ``put``,
``wait_for_space``, ``expire_after``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from contracts import Overloaded

from .mailbox import Ask

if TYPE_CHECKING:
    from .cell import Cell

__all__ = ["Actor", "ActorRef"]


class Actor:
    """Base class of every actor: state that only its own handler ever touches.

    The runtime hands an actor one message at a time (or, with ``batch_size`` set,
    a batch of what is already queued), so the actor's attributes need no lock.
    The value a handler returns is the reply to an ``ask``; an exception it raises
    reaches the asker as that exception.

    An actor whose handling never waits may define ``receive`` as a plain method
    instead of a coroutine: the runtime then calls it directly, which saves
    creating and running a coroutine per message (about a third of the cost of a
    tell to a trivial actor).

    A batch actor whose ``receive_batch`` is a plain method is drained from a loop
    callback, without a task at all, and may answer a batch later: it returns a
    :class:`~bus.Later` (or an :class:`asyncio.Future`) that completes with the list
    of replies (or fails, which fails every ask of the batch). Until it completes
    the batch is in flight and holds the actor: it is not passivated, the bus's
    drain waits for it, and mail queues up as the next batch. A ``Later`` answers
    the askers and takes the next batch inside ``resolve()``, a future one loop
    pass after it completes. A tell in a batch that raises counts as a crash, as
    for any actor.

    Attributes:
        batch_size: When above zero, :meth:`receive_batch` is called with up to this
            many queued messages at once (group commit) instead of :meth:`receive`.
        direct: Set by the runtime: whether ``receive`` is a plain method.
        direct_batch: Set by the runtime: whether ``receive_batch`` is a plain method
            of a batch actor (dispatched without a task).
    """

    batch_size: ClassVar[int] = 0
    direct: ClassVar[bool] = False
    direct_batch: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.direct = not inspect.iscoroutinefunction(cls.receive)
        cls.direct_batch = cls.batch_size > 0 and not inspect.iscoroutinefunction(cls.receive_batch)

    async def on_start(self) -> None:
        """Run once when the actor is created or restarted, before its first message."""

    async def on_stop(self) -> None:
        """Run once when the actor stops (bus exit, passivation or restart budget spent)."""

    async def receive(self, message: Any) -> Any:
        """Handle one message and return the reply for an ``ask``.

        Args:
            message: What a producer told or asked.

        Returns:
            The reply (ignored for a ``tell``).
        """
        raise NotImplementedError(f"{type(self).__name__} handles no messages")

    async def receive_batch(self, messages: Sequence[Any]) -> Sequence[Any]:
        """Handle a batch of queued messages; used when ``batch_size`` is above zero.

        Args:
            messages: Up to ``batch_size`` messages, in mailbox order.

        Returns:
            One entry per message, in order: the reply, or an exception instance that
            is raised to that message's asker alone. Raising instead fails the whole
            batch (every asker gets the exception; a tell in it counts as a crash).
        """
        return [await self.receive(message) for message in messages]


class ActorRef:
    """The handle through which producers reach an actor.

    A reference to a keyed actor stays valid across passivation: mail sent after
    the instance was passivated activates a fresh one, so nothing is lost.
    """

    __slots__ = ("_cell",)

    def __init__(self, cell: Cell) -> None:
        self._cell = cell

    @property
    def name(self) -> str:
        """The actor's name (keyed actors: class name and key)."""
        return self._cell.label()

    def tell(self, message: Any) -> Awaitable[None]:
        """Send without waiting for a reply; awaiting the result waits while the mailbox is full.

        With room in the mailbox the message is queued by the call itself and the
        returned awaitable is already complete, so ``await ref.tell(m)`` never
        yields on the fast path; only a full mailbox makes the await wait.

        Raises:
            ShuttingDown: The bus has closed.
        """
        cell = self._cell
        mailbox = cell.mailbox
        queue = mailbox.queue
        if len(queue) < mailbox.limit:
            # Fast path, inlined: the cell is open (the limit is 0 otherwise) and
            # there is room; nothing here awaits.
            queue.append(message)
            if cell.activation is None:
                cell.activate()
            return cell.done
        if cell.state:
            # Passivated: follow to the successor for good, so later tells take the fast path.
            cell = self._cell = cell.resolve()
        return self._tell_when_room(cell, message)

    @staticmethod
    async def _tell_when_room(cell: Cell, message: Any) -> None:
        while cell.mailbox.full():
            await cell.wait_for_space()
            cell = cell.resolve()
        cell.put(message, None)

    def try_tell(self, message: Any) -> None:
        """Send without waiting for a reply or for room in the mailbox.

        Raises:
            Overloaded: The mailbox is full.
            ShuttingDown: The bus has closed.
        """
        cell = self._cell.resolve()
        mailbox = cell.mailbox
        if len(mailbox.queue) >= mailbox.capacity:
            raise Overloaded(f"mailbox of {cell.label()} is full ({mailbox.capacity})")
        cell.put(message, None)

    def ask(self, message: Any, *, timeout: float | None = None) -> Awaitable[Any]:
        """Send and wait for the reply; awaiting the result waits while the mailbox is full.

        With room in the mailbox the request is queued by the call itself and the
        returned awaitable is the reply's future: no coroutine is made on the fast
        path. Await it to get the reply.

        Args:
            message: The request.
            timeout: Seconds to wait for the reply, room included (``None``: no limit).

        Returns:
            An awaitable of what the handler returned.

        Raises:
            AskTimeout: No reply within ``timeout``.
            ShuttingDown: The bus closed before the request was answered.
            ActorStopped: The actor has stopped.
            Exception: Whatever the handler raised.
        """
        cell = self._cell
        mailbox = cell.mailbox
        queue = mailbox.queue
        if len(queue) >= mailbox.limit:
            if cell.state:
                cell = self._cell = cell.resolve()
                mailbox = cell.mailbox
                queue = mailbox.queue
            # Still not open (stopped): the slow path dead-letters it and answers
            # ActorStopped; queued here it would wait for a handler that never runs.
            if len(queue) >= mailbox.limit:
                return self._ask_when_room(cell, message, timeout)
        # Fast path, inlined as in tell: queue the request, wake the actor.
        fut = cell.loop.create_future()
        queue.append(Ask(message, fut))
        if cell.activation is None:
            cell.activate()
        if timeout is not None:
            cell.expire_after(fut, timeout)
        return fut

    @staticmethod
    async def _ask_when_room(cell: Cell, message: Any, timeout: float | None) -> Any:
        # The timeout covers the wait for room as well: an actor stuck with a full
        # mailbox must not hang its askers. A woken asker re-checks, because a
        # producer that did not wait may have taken the room first.
        loop = cell.loop
        deadline = None if timeout is None else loop.time() + timeout
        while cell.mailbox.full():
            await cell.wait_for_space(deadline, timeout)
            cell = cell.resolve()
        fut: asyncio.Future[Any] = loop.create_future()
        cell.put(message, fut)
        if timeout is not None:
            assert deadline is not None
            cell.expire_after(fut, max(0.0, deadline - loop.time()), timeout)
        return await fut

    def try_ask(self, message: Any, *, timeout: float | None = None) -> Awaitable[Any]:
        """Queue a request now, without waiting for room; await the result for the reply.

        The message is in the mailbox when this returns, so the order of several
        ``try_ask`` calls is the order of handling even if they are awaited later.
        The result is the reply's future itself.

        Raises:
            Overloaded: The mailbox is full (raised at once, nothing queued).
            ShuttingDown: The bus has closed.
        """
        cell = self._cell.resolve()
        mailbox = cell.mailbox
        if len(mailbox.queue) >= mailbox.capacity:
            raise Overloaded(f"mailbox of {cell.label()} is full ({mailbox.capacity})")
        fut: asyncio.Future[Any] = cell.loop.create_future()
        cell.put(message, fut)
        if timeout is not None:
            cell.expire_after(fut, timeout)
        return fut

    def __repr__(self) -> str:
        return f"<ActorRef {self.name}>"
