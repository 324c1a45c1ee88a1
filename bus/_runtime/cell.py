"""The runtime record behind each actor instance: its state, activation and supervision.

A cell is what an :class:`~bus.ActorRef` points at: the mailbox, the actor instance
(made by the factory, remade on a restart), where the cell is in its life
(:class:`~bus._runtime.ports.State`) and the activation draining it, if any. How an
activation handles the mail is the cell's :class:`~bus._runtime.ports.Dispatch`,
chosen once per actor instance; the strategies are in ``dispatch.py``, the drain
loops in ``drain.py``. What the cell shares with its bus (the loop, the activation
count, dead letters) is one record it is handed, :class:`~bus._runtime.ports.BusState`;
a keyed instance also knows its group, as a :class:`~bus._runtime.ports.GroupPort`.
Those shapes live in ``ports.py``, below every module that uses them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from contracts import ShuttingDown

from .._errors import ActorStopped
from .actor import Actor
from .dispatch import UNSTARTED, dispatch_for
from .mailbox import Ask, Mailbox, expire, fail, unpack
from .ports import (
    CLOSED,
    OPEN,
    PASSIVATED,
    STOPPED,
    Activation,
    BusState,
    Dispatch,
    GroupPort,
    State,
)
from .stats import ActorCounters

__all__ = [
    "CLOSED",
    "OPEN",
    "PASSIVATED",
    "STOPPED",
    "Cell",
    "RestartPolicy",
    "State",
]

log = logging.getLogger("actorbus.bus")


class RestartPolicy:
    """How a crashing actor is restarted: at most ``max_restarts`` in ``window_s``.

    The n-th restart in the window waits ``backoff_s * 2**(n-1)`` (capped at
    ``max_backoff_s``) before a fresh instance takes over the same mailbox.
    """

    __slots__ = ("backoff_s", "max_backoff_s", "max_restarts", "window_s")

    def __init__(
        self,
        max_restarts: int = 3,
        window_s: float = 10.0,
        backoff_s: float = 0.01,
        max_backoff_s: float = 1.0,
    ) -> None:
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s


class Cell:
    """One actor instance's mailbox, state and activation.

    Every field is touched only on the event loop thread. Shared ones:

    - ``state`` (:class:`State`): changed only by the cell's own transitions,
      :meth:`stop`, :meth:`passivate` and :meth:`close`; read by producers.
    - ``activation``: the running activation, one of the kinds of
      :data:`~bus._runtime.ports.Activation`, or ``None`` when idle. At most
      one, which is what makes handling one-at-a-time (batch by batch). Set from
      ``None`` only by :meth:`activate`, when mail reaches an idle open cell;
      replaced only by the running activation itself (a task handing over to a
      callback, a callback holding a batch in flight or taking a task to
      restart); set back to ``None`` only by :meth:`end_activation`; cancelled,
      not replaced, by :meth:`close`. Idle and open means the mailbox is empty.
      ``BusState.active`` counts the cells whose activation is not ``None``.
    - ``dispatch``: :data:`~bus._runtime.dispatch.UNSTARTED` while no actor instance
      has started, else the strategy chosen for the started instance (set by
      :meth:`start`, reset when the instance stops).
    - ``mailbox``: producers append, only the activation takes (see :class:`Mailbox`).
    """

    __slots__ = (
        "activation",
        "actor",
        "counters",
        "dispatch",
        "done",
        "factory",
        "group",
        "key",
        "last_active",
        "loop",
        "mailbox",
        "name",
        "policy",
        "restart_times",
        "shared",
        "state",
    )

    def __init__(
        self,
        shared: BusState,
        factory: Callable[[], Actor],
        name: str,
        capacity: int,
        counters: ActorCounters,
        policy: RestartPolicy,
        group: GroupPort[Cell] | None = None,
        key: Any = None,
    ) -> None:
        self.shared = shared
        self.factory = factory
        self.name = name
        self.counters = counters
        self.policy = policy
        self.group = group
        self.key = key
        # Copied from ``shared`` for the producers' fast path: one lookup, not two.
        self.loop = shared.loop
        self.done = shared.done
        self.actor: Actor | None = None
        self.mailbox = Mailbox(capacity)
        self.activation: Activation | None = None
        self.state = OPEN
        self.dispatch: Dispatch = UNSTARTED
        self.last_active = 0.0
        # A tuple until the first crash: most actors never crash, and an empty list
        # per cell would cost more than the mailbox record does.
        self.restart_times: Sequence[float] = ()

    def label(self) -> str:
        """A readable name: ``Name`` or ``Name[key]``."""
        return self.name if self.group is None else f"{self.name}[{self.key!r}]"

    @property
    def started(self) -> bool:
        """Whether an actor instance has started and not stopped since."""
        return self.dispatch is not UNSTARTED

    # ---- producer side -------------------------------------------------------

    def resolve(self) -> Cell:
        """The cell mail should go to now (a passivated keyed cell's successor)."""
        state = self.state
        if state is OPEN or state is STOPPED:
            return self
        if state is CLOSED:
            raise ShuttingDown("the bus is closed")
        assert self.group is not None
        return self.group.cell(self.key)

    def put(self, message: Any, fut: asyncio.Future[Any] | None) -> None:
        """Queue one message (room was checked by the caller) and wake the actor."""
        if self.state is not OPEN:
            if self.state is PASSIVATED:
                # Resolved before a passivation and sent after it (a tell awaited
                # late): the key's current instance takes it.
                self.resolve().put(message, fut)
                return
            self.dead_letter(message, "actor stopped")
            if fut is not None and not fut.done():
                fut.set_exception(ActorStopped(f"{self.label()} has stopped"))
            return
        self.mailbox.queue.append(message if fut is None else Ask(message, fut))
        if self.activation is None:
            self.activate()

    def expire_after(
        self, fut: asyncio.Future[Any], timeout: float, shown: float | None = None
    ) -> None:
        """Fail ``fut`` with :class:`AskTimeout` unless answered within ``timeout``.

        ``shown`` is the timeout the asker gave, when ``timeout`` is what is left of it.
        """
        handle = self.loop.call_later(
            timeout, expire, fut, self.label(), timeout if shown is None else shown
        )
        fut.add_done_callback(lambda _: handle.cancel())

    def wait_for_space(
        self, deadline: float | None = None, timeout: float | None = None
    ) -> Awaitable[None]:
        """Wait until the activation takes a message out of the full mailbox.

        Args:
            deadline: Loop time after which to fail with :class:`AskTimeout`.
            timeout: The asker's timeout, for the error message.

        Raises:
            ShuttingDown: The bus is closed.
        """
        if self.state is CLOSED:
            raise ShuttingDown("the bus is closed")
        label = "" if deadline is None else self.label()
        return self.mailbox.wait_for_space(self.loop, label, deadline, timeout)

    def dead_letter(self, message: Any, reason: str) -> None:
        """Count and log a message no handler will see (never its content)."""
        self.counters.dead += 1
        self.shared.dead_letters.add(f"{self.label()}: {type(message).__name__} ({reason})")

    # ---- activation ----------------------------------------------------------

    def activate(self) -> None:
        """Start an activation: mail just reached this idle, open cell."""
        self.shared.active += 1
        group = self.group
        if group is not None:
            group.touch(self)
        self.activation = self.dispatch.launch(self)

    def end_activation(self) -> None:
        """The activation ended: the cell is idle. Every strategy ends with this."""
        self.activation = None
        self.last_active = self.loop.time()
        shared = self.shared
        shared.active -= 1
        if not shared.active:
            quiet = shared.quiet
            if quiet is not None and not quiet.done():
                quiet.set_result(None)

    # ---- supervision ---------------------------------------------------------

    async def start(self) -> None:
        """Make and start an actor instance; a failure is a crash, restarted by policy."""
        group = self.group
        if group is not None:
            predecessor = group.stopping.get(self.key)
            if predecessor is not None:
                await asyncio.wait((predecessor,))
        while True:
            try:
                # A factory that raises is a crash at start like a failing on_start:
                # left uncaught it would end the activation with the mail still queued.
                self.actor = self.factory()
                await self.actor.on_start()
            except Exception as exc:
                self.counters.failures += 1
                if not await self.crashed(exc, restart=False):
                    return
                continue
            self.dispatch = dispatch_for(self.actor)
            self.counters.activations += 1
            return

    async def failed(self, exc: Exception, fut: asyncio.Future[Any] | None) -> bool:
        """A handler raised: answer the asker, or treat a tell as a crash.

        Returns:
            Whether draining goes on (False: the actor stopped).
        """
        self.counters.failures += 1
        if fut is not None:
            fail(fut, exc)
            return True
        return await self.crashed(exc)

    async def crashed(self, exc: Exception, *, restart: bool = True) -> bool:
        """Handle a crash during a tell; return whether the actor goes on."""
        policy = self.policy
        now = self.loop.time()
        times = [t for t in self.restart_times if now - t < policy.window_s]
        times.append(now)
        self.restart_times = times
        attempt = len(times)
        if attempt > policy.max_restarts:
            log.error(
                "actor %s stopped after %d crashes in %.1fs: %s",
                self.label(),
                attempt,
                policy.window_s,
                type(exc).__name__,
            )
            self.stop()
            return False
        log.warning(
            "actor %s crashed (%s); restart %d of %d",
            self.label(),
            type(exc).__name__,
            attempt,
            policy.max_restarts,
        )
        await asyncio.sleep(min(policy.backoff_s * 2 ** (attempt - 1), policy.max_backoff_s))
        if restart:
            old = self.actor
            if old is not None and self.started:
                try:
                    await old.on_stop()
                except Exception as stop_exc:
                    log.warning("actor %s on_stop failed: %r", self.label(), stop_exc)
            self.dispatch = UNSTARTED
            self.counters.restarts += 1
            await self.start()
            return self.state is OPEN
        self.counters.restarts += 1
        return True

    # ---- the end: stopped, passivated, closed --------------------------------

    def stop(self) -> None:
        """Stop for good (the restart budget is spent): queued mail goes to dead letters."""
        self._become(STOPPED)
        group = self.group
        if group is not None:
            group.forget(self)
        self.retire("actor stopped")

    def passivate(self) -> None:
        """Retire this idle keyed instance (its group forgets it): mail goes to a successor."""
        self._become(PASSIVATED)
        self._stop_actor()

    def close(self) -> asyncio.Future[Any] | None:
        """The bus closed: refuse mail and cancel the activation.

        Returns:
            The activation to wait for, when it is a task or a batch's future.
        """
        self._become(CLOSED)
        activation = self.activation
        if activation is None:
            return None
        # A task, a batch's future or Later (its askers are answered ShuttingDown)
        # or a scheduled callback.
        activation.cancel()
        return activation if isinstance(activation, asyncio.Future) else None

    def _become(self, state: State) -> None:
        self.state = state
        self.mailbox.shut()

    def retire(self, reason: str) -> None:
        """Empty the mailbox into dead letters, release the waiting, stop the actor."""
        mailbox = self.mailbox
        queue = mailbox.queue
        while queue:
            message, fut = unpack(queue.popleft())
            self.dead_letter(message, reason)
            if fut is not None and not fut.done():
                err = ShuttingDown if self.state is CLOSED else ActorStopped
                fut.set_exception(err(f"{self.label()}: {reason}"))
        mailbox.wake_all()
        self._stop_actor()

    def _stop_actor(self) -> None:
        actor = self.actor
        if actor is None or not self.started:
            return
        self.dispatch = UNSTARTED
        if type(actor).on_stop is Actor.on_stop:
            return
        task = self.shared.keep(_stop_actor(self.label(), actor))
        if self.group is not None:
            # The key's next instance waits for this: what on_stop flushes must not
            # be overtaken by what its successor handles.
            self.group.stopped(self.key, task)


async def _stop_actor(label: str, actor: Actor) -> None:
    try:
        await actor.on_stop()
    except Exception as exc:
        log.warning("actor %s on_stop failed: %r", label, exc)
