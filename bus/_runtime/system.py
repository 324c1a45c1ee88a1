"""The actor system: the bus, what its cells share with it, and its shutdown.

:class:`Bus` owns the named actors, the keyed groups (``keyed.py``) and the topics;
:func:`open_bus` runs one for an ``async with`` block and drains it on exit. What
every cell needs of its bus is not the bus but
:class:`~bus._runtime.ports.BusState`, the one record both sides touch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec

from contracts import BusConfig, ShuttingDown

from .actor import Actor
from .cell import Cell, RestartPolicy
from .keyed import KeyedGroup, sweep
from .ports import BusState
from .ref import ActorRef
from .stats import ActorCounters, ActorStatistics, DeadLetterStatistics
from .topic import Topic

__all__ = ["Bus", "BusState", "BusStatistics", "open_bus"]


class BusStatistics(msgspec.Struct, frozen=True):
    """Everything ``stats`` reports about the runtime."""

    actors: list[ActorStatistics]
    dead_letters: DeadLetterStatistics
    topics: dict[str, int]
    draining: bool


class Bus:
    """An actor system. Create it with :func:`open_bus`.

    Attributes:
        loop: The event loop the bus runs on (asyncio, uvloop when installed).
        config: The runtime bounds.
        draining: Whether the bus is draining (its ``open_bus`` block has ended).
    """

    def __init__(self, config: BusConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self._shared = BusState(self.loop)
        # Named (singleton) actors by name, and keyed groups by kind. Written by
        # spawn/register and by shutdown only.
        self._actors: dict[str, Cell] = {}
        self._groups: dict[Hashable, KeyedGroup] = {}
        self._topics: dict[str, Topic] = {}
        self.draining = False

    @property
    def closed(self) -> bool:
        """Whether the bus has closed (no actor is made, mail raises ``ShuttingDown``)."""
        return self._shared.closed

    @property
    def done(self) -> asyncio.Future[None]:
        """A completed future: what ``tell`` returns when it queued without waiting."""
        return self._shared.done

    # ---- creating actors -----------------------------------------------------

    def spawn(
        self,
        factory: Callable[[], Actor],
        *,
        name: str,
        mailbox_size: int | None = None,
        restart: RestartPolicy | None = None,
    ) -> ActorRef:
        """Create a named actor and return its reference.

        Args:
            factory: Builds the actor (called again for each restart).
            name: A name unique within the bus.
            mailbox_size: The mailbox bound (default ``config.mailbox_size``).
            restart: The crash policy (default: 3 restarts in 10 s).

        Raises:
            ValueError: The name is taken, or ``mailbox_size`` is below 1.
            ShuttingDown: The bus is closed.
        """
        if self.closed:
            raise ShuttingDown("the bus is closed")
        if name in self._actors:
            raise ValueError(f"an actor named {name!r} exists")
        _check_mailbox_size(mailbox_size)
        cell = Cell(
            self._shared,
            factory,
            name,
            mailbox_size or self.config.mailbox_size,
            ActorCounters(name),
            restart or RestartPolicy(),
        )
        self._actors[name] = cell
        return ActorRef(cell)

    def register(
        self,
        kind: Hashable,
        factory: Callable[[Any], Actor],
        *,
        idle_s: float | None = None,
        max_live: int | None = None,
        mailbox_size: int | None = None,
        restart: RestartPolicy | None = None,
    ) -> None:
        """Declare a keyed (virtual) actor kind; instances are made by :meth:`ref`.

        Args:
            kind: What names the kind, usually the actor class.
            factory: Builds the instance for a key.
            idle_s: Passivate an instance idle this long (default ``config.keyed_idle_s``).
            max_live: Bound on live instances; the least recently activated idle one
                is passivated first. Instances with queued mail are never passivated,
                so while every live instance is busy the bound may be exceeded.
            mailbox_size: Each instance's mailbox bound.
            restart: The crash policy of each instance.

        Raises:
            ValueError: The kind is registered, or ``mailbox_size`` is below 1.
        """
        if kind in self._groups:
            raise ValueError(f"keyed actor {kind!r} is registered")
        _check_mailbox_size(mailbox_size)
        name = kind.__name__ if isinstance(kind, type) else str(kind)
        self._groups[kind] = KeyedGroup(
            self._shared,
            kind,
            factory,
            ActorCounters(name),
            idle_s if idle_s is not None else self.config.keyed_idle_s,
            max_live or self.config.max_live_keyed,
            mailbox_size or self.config.mailbox_size,
            restart or RestartPolicy(),
        )

    def ref(self, kind: Hashable, key: Any) -> ActorRef:
        """Return the reference of the keyed actor ``kind`` for ``key``.

        The instance is activated by its first message and passivated after its
        idle timeout; the reference stays valid across both.
        """
        group = self._groups.get(kind)
        if group is None:
            raise KeyError(f"keyed actor {kind!r} is not registered")
        return ActorRef(group.cell(key))

    def named(self, name: str) -> ActorRef:
        """Return the reference of the named actor ``name``."""
        return ActorRef(self._actors[name])

    def topic(self, name: str) -> Topic:
        """Return the topic ``name``, creating it on first use."""
        topic = self._topics.get(name)
        if topic is None:
            topic = self._topics[name] = Topic(name)
            if self.closed:
                topic.close()
        return topic

    def publish(self, name: str, item: Any) -> int:
        """Publish to topic ``name`` if anyone listens; return how many subscribers got it."""
        topic = self._topics.get(name)
        return 0 if topic is None else topic.publish(item)

    # ---- reporting -----------------------------------------------------------

    def statistics(self) -> BusStatistics:
        """A snapshot of every actor, the dead letters and the topics."""
        # Live means an instance exists and has started: not a reference that never
        # received mail, nor an instance that stopped, was passivated or closed.
        actors = [
            c.counters.snapshot(keyed=False, live=int(c.started), depth=len(c.mailbox.queue))
            for c in self._actors.values()
        ]
        for group in self._groups.values():
            cells = group.cells.values()
            actors.append(
                group.counters.snapshot(
                    keyed=True,
                    live=sum(c.started for c in cells),
                    depth=sum(len(c.mailbox.queue) for c in cells),
                )
            )
        return BusStatistics(
            actors=actors,
            dead_letters=self._shared.dead_letters.snapshot(),
            topics={name: t.subscriber_count for name, t in self._topics.items()},
            draining=self.draining,
        )

    @property
    def dead_letters(self) -> int:
        """How many messages went to dead letters."""
        return self._shared.dead_letters.count

    # ---- shutdown ------------------------------------------------------------

    def _cells(self) -> list[Cell]:
        cells = list(self._actors.values())
        for group in self._groups.values():
            cells.extend(group.cells.values())
        return cells

    async def _drain(self, deadline_s: float) -> None:
        """Let every mailbox empty, then close; past the deadline, answer the rest."""
        self.draining = True
        shared = self._shared
        with anyio.move_on_after(deadline_s):
            while shared.active:
                shared.quiet = self.loop.create_future()
                await shared.quiet
        shared.closed = True
        cells = self._cells()
        # Refuse mail everywhere and cancel what runs; once that has ended, empty
        # the mailboxes.
        running = [a for a in (cell.close() for cell in cells) if a is not None]
        if running:
            await asyncio.gather(*running, return_exceptions=True)
            await asyncio.sleep(0)  # let the done callbacks of cancelled batches run
        for cell in cells:
            cell.retire("bus closed before it was handled")
        for topic in self._topics.values():
            topic.close()
        if shared.tasks:
            with anyio.move_on_after(max(1.0, deadline_s)):
                await asyncio.gather(*shared.tasks, return_exceptions=True)


def _check_mailbox_size(size: int | None) -> None:
    # A mailbox of no room would make every tell wait forever.
    if size is not None and size < 1:
        raise ValueError(f"mailbox_size must be at least 1, not {size}")


@asynccontextmanager
async def open_bus(config: BusConfig | None = None) -> AsyncIterator[Bus]:
    """Run an actor system for the duration of the ``async with`` block.

    On exit the bus drains: actors keep handling (and may message each other)
    until every mailbox is empty, then it closes. Past
    ``config.shutdown_deadline_s`` anything still queued is answered with
    :class:`~contracts.ShuttingDown` (asks) or counted as a dead letter (tells).

    Args:
        config: Runtime bounds (defaults when omitted).

    Yields:
        The running bus.

    Raises:
        Exception: What the body raised, as itself (not in an exception group).
    """
    bus = Bus(config or BusConfig())
    # The task group only runs the idle sweeper, so an error raised by the body is
    # re-raised as itself after the group exits, not wrapped in an ExceptionGroup
    # that callers (and the command line's error mapping) would have to unpack.
    # Cancellation still goes through the group, which owns the cancel scope.
    error: BaseException | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(sweep, bus._groups.values(), bus.loop.time)
        try:
            yield bus
        except (anyio.get_cancelled_exc_class(), GeneratorExit):
            raise
        except BaseException as exc:
            error = exc
        finally:
            with anyio.CancelScope(shield=True):
                await bus._drain(bus.config.shutdown_deadline_s)
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
