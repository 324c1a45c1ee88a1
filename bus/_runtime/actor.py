"""The actor base class: state that only its own handler touches.

The reference producers hold is :class:`~bus.ActorRef` (``ref.py``); it sees the
runtime's cell, which this module does not.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, ClassVar

__all__ = ["Actor"]


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
