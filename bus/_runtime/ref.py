"""The reference producers hold: how mail reaches an actor's cell.

An :class:`ActorRef` points at a cell (``cell.py``). Its ``tell`` and ``ask`` inline
the fast path (the cell is open and its mailbox has room: append, activate if
idle) because a call more per message would show in the rate; everything else
goes through the cell's producer methods: ``resolve``, ``put``,
``wait_for_space``, ``expire_after``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from contracts import Overloaded

from .cell import Cell
from .mailbox import Ask

__all__ = ["ActorRef"]


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
