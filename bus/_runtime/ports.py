"""What the runtime's modules see of one another, so that every import points down.

The cell (``cell.py``) is made of what its dispatch (``dispatch.py``, ``drain.py``),
its keyed group (``keyed.py``) and its bus (``system.py``) give it, and they in turn
drive the cell. Here are the shapes they share: the cell's :class:`State`, the
:class:`BusState` a bus hands its cells, an :data:`Activation` and a
:class:`Dispatch`, and the two views one side has of the other:
:class:`CellPort` (the cell as its activation drives it) and :class:`GroupPort`
(the keyed group as its cells call it). This module imports no other module of
the runtime that imports it.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

from .actor import Actor
from .later import Later
from .mailbox import Mailbox
from .stats import ActorCounters, DeadLetters

__all__ = [
    "CLOSED",
    "OPEN",
    "PASSIVATED",
    "STOPPED",
    "Activation",
    "BusState",
    "CellPort",
    "Dispatch",
    "GroupPort",
    "State",
]


class State(enum.IntEnum):
    """Where a cell is in its life. It only moves down the list, never back up.

    ``OPEN`` is 0 so that the producers' fast path tests ``not cell.state``.
    """

    #: Takes mail. The only state with an activation started or a mailbox filled;
    #: the state a cell is made in.
    OPEN = 0
    #: A keyed instance retired while idle (no activation, empty mailbox) by its
    #: group; its actor was stopped and the group forgot it. Mail sent to it goes to
    #: the key's current instance (:meth:`Cell.resolve`). Left only for ``CLOSED``
    #: never: a passivated cell is not the bus's any more.
    PASSIVATED = 1
    #: The restart budget is spent: the mailbox was emptied into dead letters, the
    #: producers waiting for room released, the actor stopped; a keyed one was
    #: forgotten by its group. Later mail goes to dead letters, asks fail with
    #: ``ActorStopped``. A named actor's cell still becomes ``CLOSED`` at the end.
    STOPPED = 2
    #: The bus has closed: the activation was cancelled, the mailbox emptied (asks
    #: answered ``ShuttingDown``, tells counted as dead letters); mail raises
    #: ``ShuttingDown``. Final.
    CLOSED = 3


# The members as module globals: code run per message compares with these, as a
# global is a dict hit where ``State.OPEN`` is a lookup on the enum's metaclass.
OPEN = State.OPEN
PASSIVATED = State.PASSIVATED
STOPPED = State.STOPPED
CLOSED = State.CLOSED


class BusState:
    """What the cells of one bus share with it: the one record both sides touch.

    Loop thread only. Fields, with who changes them:

    - ``loop``, ``done``: the bus's event loop, and a completed future (what a tell
      that did not wait returns). Set once.
    - ``active``: how many cells have an activation now. Only ``Cell.activate``
      (+1) and ``Cell.end_activation`` (-1) change it; the bus reads it.
    - ``quiet``: while the bus waits for ``active`` to reach 0 at shutdown, the
      future it waits on (else ``None``); set by the bus, completed by the
      activation that brings ``active`` to 0.
    - ``closed``: set once by the bus when it closes; no cell is made after.
    - ``dead_letters``: cells add, the bus reports.
    - ``tasks``: the ``on_stop`` tasks of retired instances (:meth:`keep`); the
      bus waits for them when it closes.
    """

    __slots__ = ("active", "closed", "dead_letters", "done", "loop", "quiet", "tasks")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.done: asyncio.Future[None] = loop.create_future()
        self.done.set_result(None)
        self.active = 0
        self.quiet: asyncio.Future[None] | None = None
        self.closed = False
        self.dead_letters = DeadLetters()
        self.tasks: set[asyncio.Task[Any]] = set()

    def keep(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` as a task the bus waits for before it finishes closing."""
        task = self.loop.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


#: What ``Cell.activation`` holds while the cell is active (``None`` when idle). Each
#: kind, with what holds while the activation is of that kind:
#:
#: - ``asyncio.Task``: an activation task, running ``dispatch.run`` (an actor not
#:   started yet, or one drained in a task: ``cell.dispatch`` is ``UNSTARTED``,
#:   ``AWAITED``, ``DIRECT`` or ``BATCHES``) or ``dispatch.recover`` (a direct batch
#:   actor restarting after a crash). Only this task takes from the mailbox; it
#:   leaves by calling ``Cell.end_activation`` or, when a started actor turns out
#:   to be a direct batch actor, by handing over to a callback (setting the
#:   activation to the callback's handle first).
#: - ``asyncio.Handle`` (or uvloop's): a scheduled ``dispatch.run_now``, and
#:   ``cell.dispatch`` is ``CALLBACK``. Nothing takes from the mailbox until it
#:   runs; it then replaces itself (a batch in flight, a restart task, or another
#:   scheduled callback for fairness) or ends the activation before it returns.
#: - ``asyncio.Future`` or :class:`~bus.Later`: a direct batch actor's batch
#:   answered later and still in flight, and ``cell.dispatch`` is ``CALLBACK``. The
#:   batch's messages are out of the mailbox and held by its completion callback;
#:   nothing takes from the mailbox until it completes (mail queues up and becomes
#:   the next batch), and its completion answers the batch's askers, then takes
#:   the next batch or ends the activation.
#: - ``None``: idle. An idle open cell's mailbox is empty, and
#:   ``BusState.active`` does not count the cell.
#:
#: Each kind can be cancelled, which is what the bus does to it at its shutdown
#: deadline; the futures among them (task, batch future) can also be awaited.
Activation = asyncio.Task[None] | asyncio.Handle | asyncio.Future[Any] | Later


class Dispatch:
    """A drain strategy: how an activation starts, and the loop a task drains with.

    The five are the module's constants, shared by every cell; a cell holds one.

    Attributes:
        name: What the strategy is called, for ``repr``.
        launch: Starts an activation of a cell, returning what it is (a task or a
            scheduled callback).
        drain: The loop an activation task runs while there is mail (``None``:
            this strategy does not drain in a task).
    """

    __slots__ = ("drain", "launch", "name")

    def __init__(
        self,
        name: str,
        launch: Callable[[CellPort], Activation],
        drain: Callable[[CellPort], Coroutine[Any, Any, None]] | None,
    ) -> None:
        self.name = name
        self.launch = launch
        self.drain = drain

    def __repr__(self) -> str:
        return f"<Dispatch {self.name}>"


class CellPort(Protocol):
    """The cell as its activation sees it: what ``dispatch.py`` and ``drain.py`` use.

    :class:`~bus._runtime.cell.Cell` is the one implementation; the fields and
    their invariants are documented there.
    """

    loop: asyncio.AbstractEventLoop
    actor: Actor | None
    mailbox: Mailbox
    counters: ActorCounters
    state: State
    activation: Activation | None
    dispatch: Dispatch

    def label(self) -> str: ...

    def activate(self) -> None: ...

    def end_activation(self) -> None: ...

    async def start(self) -> None: ...

    async def failed(self, exc: Exception, fut: asyncio.Future[Any] | None) -> bool: ...

    async def crashed(self, exc: Exception, *, restart: bool = True) -> bool: ...


C = TypeVar("C")


class GroupPort(Protocol[C]):
    """A keyed group as its cells see it (``keyed.py`` implements it).

    ``C`` is the cell type, so a cell gets its own kind back from :meth:`cell`.
    """

    stopping: dict[Any, asyncio.Task[None]]

    def cell(self, key: Any) -> C: ...

    def touch(self, cell: C) -> None: ...

    def forget(self, cell: C) -> None: ...

    def stopped(self, key: Any, task: asyncio.Task[None]) -> None: ...
