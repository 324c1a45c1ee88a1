"""Keyed (virtual) actors: one instance per key, made on first mail, passivated when idle.

A kind registered with ``Bus.register`` is a :class:`KeyedGroup`. ``Bus.ref(kind,
key)`` hands out a reference to the key's live cell, made if there is none; the
reference stays valid across passivation, because a passivated cell sends its
mail on to the key's next instance. An instance is passivated after
``idle_s`` without mail (:func:`sweep`), or when the live instances pass
``max_live`` (the least recently activated idle one first). Only idle instances
with an empty mailbox are passivated, so nothing queued is lost or reordered, and
the bound is soft while every instance is busy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import anyio

from contracts import ShuttingDown

from .actor import Actor
from .cell import Cell, RestartPolicy
from .ports import BusState
from .stats import ActorCounters

__all__ = ["KeyedGroup", "sweep"]


class KeyedGroup:
    """The live instances of one keyed actor kind, oldest activation first.

    ``cells`` maps key to cell; its insertion order is the least-recently-activated
    order, refreshed on every activation (:meth:`touch`), so passivation under the
    live bound takes from the front. A cell leaves it when it is passivated or
    stopped, never otherwise. ``stopping`` maps a key to its retired instance's
    ``on_stop`` task while that runs; the key's next instance starts after it. Only
    the event loop thread touches either, and only through this class and
    :class:`~bus._runtime.cell.Cell`.
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
        "shared",
        "stopping",
    )

    def __init__(
        self,
        shared: BusState,
        kind: Hashable,
        factory: Callable[[Any], Actor],
        counters: ActorCounters,
        idle_s: float,
        max_live: int,
        capacity: int,
        policy: RestartPolicy,
    ) -> None:
        self.shared = shared
        self.kind = kind
        self.factory = factory
        self.counters = counters
        self.idle_s = idle_s
        self.max_live = max_live
        self.capacity = capacity
        self.policy = policy
        self.cells: dict[Any, Cell] = {}
        self.stopping: dict[Any, asyncio.Task[None]] = {}

    def cell(self, key: Any) -> Cell:
        """The live cell for ``key``, made if there is none.

        Raises:
            ShuttingDown: The bus is closed.
        """
        if self.shared.closed:
            raise ShuttingDown("the bus is closed")
        cell = self.cells.get(key)
        if cell is None:
            factory = self.factory
            cell = Cell(
                self.shared,
                lambda: factory(key),
                self.counters.name,
                self.capacity,
                self.counters,
                self.policy,
                self,
                key,
            )
            self.cells[key] = cell
            if len(self.cells) > self.max_live:
                self._shrink(keep=cell)
        return cell

    def touch(self, cell: Cell) -> None:
        """``cell`` is being activated: it becomes the most recently activated."""
        cells = self.cells
        del cells[cell.key]
        cells[cell.key] = cell

    def forget(self, cell: Cell) -> None:
        """``cell`` stopped for good: the key's next mail makes a new instance."""
        if self.cells.get(cell.key) is cell:
            del self.cells[cell.key]

    def stopped(self, key: Any, task: asyncio.Task[None]) -> None:
        """The instance of ``key`` is running ``on_stop`` in ``task``; its successor waits."""
        self.stopping[key] = task
        task.add_done_callback(lambda done: self._stop_done(key, done))

    def _stop_done(self, key: Any, task: asyncio.Task[None]) -> None:
        if self.stopping.get(key) is task:
            del self.stopping[key]

    def passivate_idle(self, now: float) -> None:
        """Passivate every instance idle (no activation, no mail) for ``idle_s``."""
        idle_s = self.idle_s
        for cell in list(self.cells.values()):
            if (
                cell.activation is None
                and not cell.mailbox.queue
                and now - cell.last_active >= idle_s
            ):
                self._passivate(cell)

    def _passivate(self, cell: Cell) -> None:
        del self.cells[cell.key]
        self.counters.passivations += 1
        cell.passivate()

    def _shrink(self, keep: Cell) -> None:
        # ``keep`` was created for mail about to be sent: it is idle and empty too,
        # and passivating it would send that mail to dead letters.
        excess = len(self.cells) - self.max_live
        for cell in list(self.cells.values()):
            if excess <= 0:
                return
            if cell is not keep and cell.activation is None and not cell.mailbox.queue:
                self._passivate(cell)
                excess -= 1


async def sweep(groups: Iterable[KeyedGroup], clock: Callable[[], float]) -> None:
    """Passivate idle keyed instances, forever, checking four times per shortest idle time.

    Args:
        groups: The registered groups (a live view: kinds registered later count).
        clock: The loop's clock.
    """
    while True:
        periods = [g.idle_s for g in groups if g.idle_s > 0]
        await anyio.sleep(max(0.01, min(periods, default=1.0) / 4))
        now = clock()
        for group in groups:
            group.passivate_idle(now)
