"""The actor system: spawning, keyed activation and passivation, dead letters, shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec

from contracts import BusConfig, ShuttingDown

from .._errors import ActorStopped
from .actor import Actor, ActorRef
from .cell import CLOSED, PASSIVATED, STOPPED, Cell, RestartPolicy
from .mailbox import unpack
from .stats import ActorStatistics, Counters, DeadLetterStatistics
from .topic import Topic

__all__ = ["Bus", "BusStatistics", "KeyedGroup", "open_bus"]

log = logging.getLogger("actorbus.bus")


class BusStatistics(msgspec.Struct, frozen=True):
    """Everything ``stats`` reports about the runtime."""

    actors: list[ActorStatistics]
    dead_letters: DeadLetterStatistics
    topics: dict[str, int]
    draining: bool


class KeyedGroup:
    """The live instances of one keyed actor kind, oldest activation first.

    ``cells`` maps key to cell; its insertion order is the least-recently-activated
    order, refreshed on every activation, so passivation under the live bound takes
    from the front. ``stopping`` maps a key to its retired instance's ``on_stop``
    task while that runs; the key's next instance starts after it. Only the event
    loop thread touches either.
    """

    __slots__ = (
        "capacity",
        "cells",
        "counters",
        "factory",
        "idle_s",
        "kind",
        "max_live",
        "policy",
        "stopping",
    )

    def __init__(
        self,
        kind: Hashable,
        factory: Callable[[Any], Actor],
        counters: Counters,
        idle_s: float,
        max_live: int,
        capacity: int,
        policy: RestartPolicy,
    ) -> None:
        self.kind = kind
        self.factory = factory
        self.counters = counters
        self.idle_s = idle_s
        self.max_live = max_live
        self.capacity = capacity
        self.policy = policy
        self.cells: dict[Any, Cell] = {}
        self.stopping: dict[Any, asyncio.Task[None]] = {}


class Bus:
    """An actor system. Create it with :func:`open_bus`.

    Attributes:
        loop: The event loop the bus runs on (asyncio, uvloop when installed).
        config: The runtime bounds.
    """

    def __init__(self, config: BusConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        # Named (singleton) actors by name, and keyed groups by kind. Written by
        # spawn/register and by shutdown only.
        self._actors: dict[str, Cell] = {}
        self._groups: dict[Hashable, KeyedGroup] = {}
        self._topics: dict[str, Topic] = {}
        # Activation tasks alive now; zero with draining set means the bus is quiet.
        self._active = 0
        self._quiet: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dead_count = 0
        self._dead_recent: deque[str] = deque(maxlen=32)
        self.draining = False
        self.closed = False
        # A completed future: what ``tell`` returns when it queued without waiting.
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.done.set_result(None)

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
            self,
            factory,
            name,
            mailbox_size or self.config.mailbox_size,
            Counters(name),
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
            kind,
            factory,
            Counters(name),
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
        return ActorRef(self.keyed_cell(group, key))

    def keyed_cell(self, group: KeyedGroup, key: Any) -> Cell:
        """The live cell for ``key``, created if there is none."""
        if self.closed:
            raise ShuttingDown("the bus is closed")
        cell = group.cells.get(key)
        if cell is None:
            factory = group.factory
            cell = Cell(
                self,
                lambda: factory(key),
                group.counters.name,
                group.capacity,
                group.counters,
                group.policy,
                group,
                key,
            )
            group.cells[key] = cell
            if len(group.cells) > group.max_live:
                self._shrink(group, keep=cell)
        return cell

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

    # ---- runtime hooks used by cells ---------------------------------------

    def activate(self, cell: Cell) -> asyncio.Task[None] | asyncio.Handle:
        """Start an activation for a cell that just received mail.

        A started direct batch actor is drained by a loop callback; any other
        actor (or one not started yet: ``on_start`` may wait) by a task.
        """
        self._active += 1
        group = cell.group
        if group is not None:
            # Refresh the least-recently-activated order.
            del group.cells[cell.key]
            group.cells[cell.key] = cell
        actor = cell.actor
        if cell.started and actor is not None and actor.direct_batch:
            return self.loop.call_soon(cell.run_now)
        return self.loop.create_task(cell.run())

    def deactivated(self, cell: Cell) -> None:
        """An activation ended."""
        self._active -= 1
        if self._active == 0 and self._quiet is not None and not self._quiet.done():
            self._quiet.set_result(None)

    def dead_letter(self, cell: Cell, message: Any, reason: str) -> None:
        """Count and log a message no handler will see (never its content)."""
        self._dead_count += 1
        cell.counters.dead += 1
        entry = f"{cell.label()}: {type(message).__name__} ({reason})"
        self._dead_recent.append(entry)
        count = self._dead_count
        if count & (count - 1) == 0 or count % 1000 == 0:
            log.warning("dead letter #%d: %s", count, entry)

    def stop_cell(self, cell: Cell) -> None:
        """Stop a cell for good: its queued mail goes to dead letters."""
        cell.state = STOPPED
        group = cell.group
        if group is not None and group.cells.get(cell.key) is cell:
            del group.cells[cell.key]
        self._flush(cell, "actor stopped")
        cell.wake_all()
        self._finish(cell)

    def _flush(self, cell: Cell, reason: str) -> None:
        mailbox = cell.mailbox
        while mailbox:
            message, fut = unpack(mailbox.popleft())
            self.dead_letter(cell, message, reason)
            if fut is not None and not fut.done():
                err = ShuttingDown if cell.state == CLOSED else ActorStopped
                fut.set_exception(err(f"{cell.label()}: {reason}"))

    def _finish(self, cell: Cell) -> None:
        actor = cell.actor
        if actor is None or not cell.started:
            return
        cell.started = False
        if type(actor).on_stop is Actor.on_stop:
            return
        task = self.loop.create_task(_stop_actor(cell.label(), actor))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        group = cell.group
        if group is not None:
            # The key's next instance waits for this: what on_stop flushes must not
            # be overtaken by what its successor handles.
            group.stopping[cell.key] = task
            task.add_done_callback(lambda done: _forget(group, cell.key, done))

    def _passivate(self, group: KeyedGroup, cell: Cell) -> None:
        cell.state = PASSIVATED
        del group.cells[cell.key]
        group.counters.passivations += 1
        self._finish(cell)

    def _shrink(self, group: KeyedGroup, keep: Cell) -> None:
        # ``keep`` was created for mail about to be sent: it is idle and empty too,
        # and passivating it would send that mail to dead letters.
        excess = len(group.cells) - group.max_live
        for cell in list(group.cells.values()):
            if excess <= 0:
                return
            if cell is not keep and cell.activation is None and not cell.mailbox:
                self._passivate(group, cell)
                excess -= 1

    async def _sweep(self) -> None:
        while True:
            periods = [g.idle_s for g in self._groups.values() if g.idle_s > 0]
            await anyio.sleep(max(0.01, min(periods, default=1.0) / 4))
            now = self.loop.time()
            for group in self._groups.values():
                for cell in list(group.cells.values()):
                    if (
                        cell.activation is None
                        and not cell.mailbox
                        and now - cell.last_active >= group.idle_s
                    ):
                        self._passivate(group, cell)

    # ---- reporting -----------------------------------------------------------

    def statistics(self) -> BusStatistics:
        """A snapshot of every actor, the dead letters and the topics."""
        # Live means an instance exists and has started: not a reference that never
        # received mail, nor an instance that stopped, was passivated or closed.
        actors = [
            c.counters.snapshot(keyed=False, live=int(c.started), depth=len(c.mailbox))
            for c in self._actors.values()
        ]
        for group in self._groups.values():
            cells = group.cells.values()
            actors.append(
                group.counters.snapshot(
                    keyed=True,
                    live=sum(c.started for c in cells),
                    depth=sum(len(c.mailbox) for c in cells),
                )
            )
        return BusStatistics(
            actors=actors,
            dead_letters=DeadLetterStatistics(self._dead_count, list(self._dead_recent)),
            topics={name: t.subscriber_count for name, t in self._topics.items()},
            draining=self.draining,
        )

    @property
    def dead_letters(self) -> int:
        """How many messages went to dead letters."""
        return self._dead_count

    # ---- shutdown ------------------------------------------------------------

    def _cells(self) -> list[Cell]:
        cells = list(self._actors.values())
        for group in self._groups.values():
            cells.extend(group.cells.values())
        return cells

    async def _drain(self, deadline_s: float) -> None:
        """Let every mailbox empty, then close; past the deadline, answer the rest."""
        self.draining = True
        with anyio.move_on_after(deadline_s):
            while self._active:
                self._quiet = self.loop.create_future()
                await self._quiet
        self.closed = True
        cells = self._cells()
        running: list[asyncio.Future[Any]] = []
        for cell in cells:
            cell.state = CLOSED
            activation = cell.activation
            if activation is not None:
                # A task, a batch's future (its askers are answered ShuttingDown) or
                # a scheduled callback.
                activation.cancel()
                if isinstance(activation, asyncio.Future):
                    running.append(activation)
        if running:
            await asyncio.gather(*running, return_exceptions=True)
            await asyncio.sleep(0)  # let the done callbacks of cancelled batches run
        for cell in cells:
            self._flush(cell, "bus closed before it was handled")
            cell.wake_all()
            self._finish(cell)
        for topic in self._topics.values():
            topic.close()
        if self._tasks:
            with anyio.move_on_after(max(1.0, deadline_s)):
                await asyncio.gather(*self._tasks, return_exceptions=True)


def _forget(group: KeyedGroup, key: Any, task: asyncio.Task[None]) -> None:
    if group.stopping.get(key) is task:
        del group.stopping[key]


def _check_mailbox_size(size: int | None) -> None:
    # A mailbox of no room would make every tell wait forever.
    if size is not None and size < 1:
        raise ValueError(f"mailbox_size must be at least 1, not {size}")


async def _stop_actor(label: str, actor: Actor) -> None:
    try:
        await actor.on_stop()
    except Exception as exc:
        log.warning("actor %s on_stop failed: %r", label, exc)


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
        tg.start_soon(bus._sweep)
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
