"""The runtime record behind each actor: mailbox, activation and supervision.

An actor has no task of its own while idle. Mail to an idle actor creates one
activation task; it drains the mailbox without yielding to the loop (up to
``THROUGHPUT`` messages between yields, for fairness), lingers one loop cycle for
follow-up mail, then ends. Idle actors so cost a few hundred bytes, and a burst of
mail costs one task, not one per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Callable, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

from contracts import ShuttingDown

from .._errors import ActorStopped, AskTimeout
from .actor import Actor
from .later import Later
from .mailbox import Request
from .stats import LATENCY_SAMPLE_EVERY, Counters

if TYPE_CHECKING:
    from .system import Bus, KeyedGroup

__all__ = [
    "CLOSED",
    "OPEN",
    "PASSIVATED",
    "STOPPED",
    "THROUGHPUT",
    "Cell",
    "RestartPolicy",
]

log = logging.getLogger("actorbus.bus")

#: Messages an activation handles before it yields to other tasks.
THROUGHPUT = 512

OPEN = 0  # takes mail
PASSIVATED = 1  # keyed instance retired while idle; its refs re-resolve to a new one
STOPPED = 2  # restart budget spent; mail goes to dead letters
CLOSED = 3  # the bus has closed; mail raises ShuttingDown

_SAMPLE_MASK = LATENCY_SAMPLE_EVERY - 1


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


async def _yield() -> None:
    await asyncio.sleep(0)


def _expire(fut: asyncio.Future[Any], label: str, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(AskTimeout(f"{label} did not answer within {timeout:g}s"))


class Cell:
    """One actor instance's mailbox, state and activation.

    Every field is touched only on the event loop thread. ``mailbox`` holds
    tells as bare messages and asks as :class:`Request`, in arrival order; only the
    activation task pops from it. ``activation`` is the running task or ``None`` when idle; there
    is at most one, which is what makes handling one-at-a-time.
    """

    __slots__ = (
        "activation",
        "actor",
        "bus",
        "capacity",
        "counters",
        "done",
        "factory",
        "group",
        "key",
        "last_active",
        "mailbox",
        "name",
        "policy",
        "restart_times",
        "space_waiters",
        "started",
        "state",
    )

    def __init__(
        self,
        bus: Bus,
        factory: Callable[[], Actor],
        name: str,
        capacity: int,
        counters: Counters,
        policy: RestartPolicy,
        group: KeyedGroup | None = None,
        key: Any = None,
    ) -> None:
        self.bus = bus
        self.factory = factory
        self.name = name
        self.capacity = capacity
        self.counters = counters
        self.policy = policy
        self.group = group
        self.key = key
        self.actor: Actor | None = None
        self.mailbox: deque[Any] = deque()
        self.done = bus.done
        self.space_waiters: deque[asyncio.Future[None]] = deque()
        # The running activation, None when idle: a task; or, for a started direct
        # batch actor, a scheduled callback or the future (or Later) of a batch being
        # answered. At most one, which makes handling one-at-a-time (batch by batch).
        self.activation: asyncio.Future[Any] | asyncio.Handle | Later | None = None
        self.state = OPEN
        self.started = False
        self.last_active = 0.0
        self.restart_times: list[float] = []

    def label(self) -> str:
        """A readable name: ``Name`` or ``Name[key]``."""
        return self.name if self.group is None else f"{self.name}[{self.key!r}]"

    # ---- producer side -------------------------------------------------------

    def resolve(self) -> Cell:
        """The cell mail should go to now (a passivated keyed cell's successor)."""
        if self.state == OPEN or self.state == STOPPED:
            return self
        if self.state == CLOSED:
            raise ShuttingDown("the bus is closed")
        assert self.group is not None
        return self.bus.keyed_cell(self.group, self.key)

    def put(self, message: Any, fut: asyncio.Future[Any] | None) -> None:
        """Queue one message (room was checked by the caller) and wake the actor."""
        if self.state != OPEN:
            if self.state == PASSIVATED:
                # Resolved before a passivation and sent after it (a tell awaited
                # late): the key's current instance takes it.
                self.resolve().put(message, fut)
                return
            self.bus.dead_letter(self, message, "actor stopped")
            if fut is not None and not fut.done():
                fut.set_exception(ActorStopped(f"{self.label()} has stopped"))
            return
        self.mailbox.append(message if fut is None else Request(message, fut))
        if self.activation is None:
            self.activation = self.bus.activate(self)

    def put_request(self, message: Any) -> asyncio.Future[Any]:
        """Queue a request and return the future its reply will complete."""
        fut: asyncio.Future[Any] = self.bus.loop.create_future()
        self.put(message, fut)
        return fut

    def expire_after(
        self, fut: asyncio.Future[Any], timeout: float, shown: float | None = None
    ) -> None:
        """Fail ``fut`` with :class:`AskTimeout` unless answered within ``timeout``.

        ``shown`` is the timeout the asker gave, when ``timeout`` is what is left of it.
        """
        handle = self.bus.loop.call_later(
            timeout, _expire, fut, self.label(), timeout if shown is None else shown
        )
        fut.add_done_callback(lambda _: handle.cancel())

    async def wait_for_space(
        self, deadline: float | None = None, timeout: float | None = None
    ) -> None:
        """Wait until the activation takes a message out of a full mailbox.

        Args:
            deadline: Loop time after which to fail with :class:`AskTimeout`.
            timeout: The asker's timeout, for the error message.
        """
        if self.state == CLOSED:
            raise ShuttingDown("the bus is closed")
        loop = self.bus.loop
        fut: asyncio.Future[None] = loop.create_future()
        self.space_waiters.append(fut)
        handle = None
        if deadline is not None:
            handle = loop.call_at(deadline, _expire, fut, self.label(), timeout or 0.0)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._wake_one()  # pass the wake-up on; this waiter will not use it
            else:
                with contextlib.suppress(ValueError):
                    self.space_waiters.remove(fut)
            raise
        except AskTimeout:
            with contextlib.suppress(ValueError):
                self.space_waiters.remove(fut)
            raise
        finally:
            if handle is not None:
                handle.cancel()

    def _wake_one(self) -> None:
        waiters = self.space_waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def wake_all(self) -> None:
        """Release every producer waiting for room (the cell stopped or closed)."""
        waiters = self.space_waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    # ---- actor side ----------------------------------------------------------

    async def run(self) -> None:
        """The body of one activation: start if needed, drain, linger, end."""
        handed_over = False
        try:
            if not self.started:
                await self._start()
            actor = self.actor
            if self.started and actor is not None and actor.direct_batch:
                # Started: a direct batch actor is drained by loop callbacks from now on;
                # the callback takes over this activation (and its count).
                self.activation = self.bus.loop.call_soon(self.run_now)
                handed_over = True
                return
            while self.state == OPEN:
                if self.mailbox:
                    assert self.actor is not None
                    try:
                        if self.actor.batch_size > 0:
                            await self._drain_batches(self.actor.batch_size)
                        elif self.actor.direct:
                            await self._drain_direct()
                        else:
                            await self._drain()
                    except asyncio.CancelledError:
                        if _being_cancelled():
                            raise
                        # A handler let out a CancelledError of its own (it awaited
                        # something that was cancelled): a failed message, already
                        # answered; ending here would strand the rest of the mailbox.
                        self.counters.failures += 1
                    continue
                await _yield()  # linger one loop cycle: follow-up mail reuses this task
                if not self.mailbox:
                    break
        finally:
            if not handed_over:
                self.activation = None
                self.last_active = self.bus.loop.time()
                self.bus.deactivated(self)

    async def _start(self) -> None:
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
                if not await self._crashed(exc, restart=False):
                    return
                continue
            self.started = True
            self.counters.activations += 1
            return

    async def _drain(self) -> None:
        """Handle queued messages one at a time with a coroutine ``receive``.

        :meth:`_drain_direct` is this loop for a plain-method ``receive``: the two
        differ only in the ``await``, which cannot be shared without a cost on every
        message, and in cancellation (only an awaited handler can be cancelled).
        """
        mailbox = self.mailbox
        waiters = self.space_waiters
        counters = self.counters
        receive = self._receive()
        handled = 0
        try:
            while mailbox:
                message = mailbox.popleft()
                if type(message) is Request:
                    fut = message.fut
                    message = message.message
                else:
                    fut = None
                if waiters:
                    self._wake_one()
                handled += 1
                sampled = not handled & _SAMPLE_MASK
                if sampled:
                    t0 = perf_counter()
                try:
                    result = await receive(message)
                except Exception as exc:
                    if not await self._failed(exc, fut):
                        return
                    receive = self._receive()
                    continue
                except BaseException as exc:
                    if fut is not None and not fut.done():
                        fut.set_exception(_interruption(self.label(), exc))
                    raise
                if fut is not None and not fut.done():
                    fut.set_result(result)
                if sampled:
                    counters.sample(perf_counter() - t0)
                    if handled >= THROUGHPUT:
                        counters.messages_out += handled
                        handled = 0
                        await _yield()
        finally:
            counters.messages_out += handled

    async def _drain_direct(self) -> None:
        """:meth:`_drain` for an actor whose ``receive`` is a plain method (no coroutine)."""
        mailbox = self.mailbox
        waiters = self.space_waiters
        counters = self.counters
        receive = self._receive()
        handled = 0
        try:
            while mailbox:
                message = mailbox.popleft()
                if type(message) is Request:
                    fut = message.fut
                    message = message.message
                else:
                    fut = None
                if waiters:
                    self._wake_one()
                handled += 1
                sampled = not handled & _SAMPLE_MASK
                if sampled:
                    t0 = perf_counter()
                try:
                    result = receive(message)
                except Exception as exc:
                    if not await self._failed(exc, fut):
                        return
                    receive = self._receive()
                    continue
                except BaseException as exc:
                    # Nothing here awaits, so this is no cancellation of the actor
                    # (a CancelledError the handler passed on, an interrupt), but it
                    # leaves this loop all the same: the asker must get an answer.
                    if fut is not None and not fut.done():
                        fut.set_exception(_interruption(self.label(), exc))
                    raise
                if fut is not None and not fut.done():
                    fut.set_result(result)
                if sampled:
                    counters.sample(perf_counter() - t0)
                    if handled >= THROUGHPUT:
                        counters.messages_out += handled
                        handled = 0
                        await _yield()
        finally:
            counters.messages_out += handled

    def _receive(self) -> Callable[[Any], Any]:
        actor = self.actor
        assert actor is not None
        return actor.receive

    async def _failed(self, exc: Exception, fut: asyncio.Future[Any] | None) -> bool:
        """A handler raised: answer the asker, or treat a tell as a crash.

        Returns:
            Whether draining goes on (False: the actor stopped).
        """
        self.counters.failures += 1
        if fut is not None:
            _fail(fut, exc)
            return True
        return await self._crashed(exc)

    async def _drain_batches(self, size: int) -> None:
        mailbox = self.mailbox
        counters = self.counters
        while mailbox:
            items = self._take(size)
            actor = self.actor
            assert actor is not None
            t0 = perf_counter()
            try:
                results = await actor.receive_batch(
                    [i.message if type(i) is Request else i for i in items]
                )
                if len(results) != len(items):
                    raise RuntimeError(
                        f"{self.label()} answered {len(results)} of {len(items)} messages"
                    )
            except Exception as exc:
                counters.failures += 1
                counters.messages_out += len(items)
                crashed = False
                for item in items:
                    if type(item) is Request:
                        _fail(item.fut, exc)
                    else:
                        crashed = True
                if crashed and not await self._crashed(exc):
                    return
                continue
            except BaseException as exc:
                for item in items:
                    if type(item) is Request and not item.fut.done():
                        item.fut.set_exception(_interruption(self.label(), exc))
                raise
            counters.sample(perf_counter() - t0)
            self._reply(items, results)
            if mailbox:
                # More mail: let the askers just answered run before the next batch.
                # An empty mailbox needs no yield here: the activation lingers a cycle.
                await _yield()

    def _take(self, size: int) -> list[Any]:
        mailbox = self.mailbox
        if len(mailbox) <= size:
            items = list(mailbox)  # the whole mailbox in one C call
            mailbox.clear()
        else:
            popleft = mailbox.popleft
            items = [popleft() for _ in range(size)]
        if self.space_waiters:
            for _ in range(len(items)):
                self._wake_one()
        return items

    def _reply(self, items: list[Any], results: Sequence[Any]) -> None:
        """Answer each ask of a handled batch with its entry of ``results``."""
        counters = self.counters
        counters.messages_out += len(items)
        for item, result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                counters.failures += 1
                if type(item) is Request:
                    _fail(item.fut, result)
            elif type(item) is Request:
                fut = item.fut
                if not fut.done():
                    fut.set_result(result)

    def run_now(self) -> None:
        """One activation of a started direct batch actor, run as a loop callback.

        A batch answered with a future or a :class:`Later` holds the actor until it
        completes (it is the activation meanwhile): mail queues up and becomes the
        next batch, as an awaited batch would.
        """
        actor = self.actor
        assert actor is not None
        mailbox = self.mailbox
        counters = self.counters
        size = actor.batch_size
        handled = 0
        while mailbox and self.state == OPEN:
            items = self._take(size)
            t0 = perf_counter()
            try:
                # A plain method (direct_batch): the replies, or a future of them.
                results: Any = actor.receive_batch(
                    [i.message if type(i) is Request else i for i in items]
                )
                if (
                    type(results) is not Later
                    and not isinstance(results, asyncio.Future)
                    and len(results) != len(items)
                ):
                    raise RuntimeError(
                        f"{self.label()} answered {len(results)} of {len(items)} messages"
                    )
            except Exception as exc:
                counters.failures += 1
                counters.messages_out += len(items)
                crashed = False
                for item in items:
                    if type(item) is Request:
                        _fail(item.fut, exc)
                    else:
                        crashed = True
                if crashed:
                    # Restarting waits out a backoff: that takes a task.
                    self.activation = self.bus.loop.create_task(self._recover(exc))
                    return
                continue
            if not counters.messages_out & _SAMPLE_MASK:
                counters.sample(perf_counter() - t0)
            if type(results) is Later:
                if not results.done():
                    self.activation = results
                    results.then(functools.partial(self._answer_later, items))
                    return
                self._settle(items, results)  # answered within the call
            elif isinstance(results, asyncio.Future):
                self.activation = results
                results.add_done_callback(functools.partial(self._answer_later, items))
                return
            else:
                self._reply(items, results)
            handled += len(items)
            if handled >= THROUGHPUT and mailbox:
                # Fairness: let other callbacks and tasks run before the rest.
                self.activation = self.bus.loop.call_soon(self.run_now)
                return
        self.activation = None
        self.last_active = self.bus.loop.time()
        self.bus.deactivated(self)

    def _answer_later(self, items: list[Any], fut: asyncio.Future[Any] | Later) -> None:
        """A batch answered with a future or a Later completed: answer its askers, go on."""
        self._settle(items, fut)
        if self.mailbox and self.state == OPEN:
            self.run_now()  # the next batch, in the same activation
            return
        self.activation = None
        self.last_active = self.bus.loop.time()
        self.bus.deactivated(self)

    def _settle(self, items: list[Any], fut: asyncio.Future[Any] | Later) -> None:
        """Answer a batch's askers from its completed future or Later."""
        if type(fut) is Later:
            results = fut.result()  # None unless resolved
            if type(results) is list and len(results) == len(items):
                self._reply(items, results)  # the usual answer, without the checks below
                return
        if fut.cancelled():
            error: BaseException | None = ShuttingDown(
                f"{self.label()}: stopped before it answered"
            )
        else:
            error = fut.exception()
            if error is None:
                results = fut.result()
                # Raising here, in a loop callback, would strand the actor with its
                # activation set: an unusable answer fails the batch instead.
                if type(results) is not list and not isinstance(results, Sequence):
                    error = TypeError(
                        f"{self.label()} answered a batch with {type(results).__name__}"
                    )
                elif len(results) == len(items):
                    self._reply(items, results)
                else:
                    error = RuntimeError(
                        f"{self.label()} answered {len(results)} of {len(items)} messages"
                    )
        if error is not None:
            self.counters.failures += 1
            self.counters.messages_out += len(items)
            for item in items:
                if type(item) is Request:
                    _fail(item.fut, error)

    async def _recover(self, exc: Exception) -> None:
        try:
            if not await self._crashed(exc):
                return
        finally:
            self.activation = None
            self.last_active = self.bus.loop.time()
            self.bus.deactivated(self)
        if self.mailbox and self.state == OPEN:
            self.activation = self.bus.activate(self)

    async def _crashed(self, exc: Exception, *, restart: bool = True) -> bool:
        """Handle a crash during a tell; return whether the actor goes on."""
        policy = self.policy
        now = self.bus.loop.time()
        self.restart_times = [t for t in self.restart_times if now - t < policy.window_s]
        self.restart_times.append(now)
        attempt = len(self.restart_times)
        if attempt > policy.max_restarts:
            log.error(
                "actor %s stopped after %d crashes in %.1fs: %s",
                self.label(),
                attempt,
                policy.window_s,
                type(exc).__name__,
            )
            self.bus.stop_cell(self)
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
            self.started = False
            self.counters.restarts += 1
            await self._start()
            return self.state == OPEN
        self.counters.restarts += 1
        return True


def _being_cancelled() -> bool:
    """Whether this task was asked to stop (not merely handed a CancelledError)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _interruption(label: str, exc: BaseException) -> Exception:
    """What the asker of a message whose handling was cut short gets."""
    if _being_cancelled():
        return ShuttingDown(f"{label} stopped mid-message")
    return RuntimeError(f"{label}: the handler raised {type(exc).__name__}")


def _fail(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if fut.done():
        return
    if isinstance(exc, StopIteration | StopAsyncIteration):
        exc = RuntimeError(f"handler raised {type(exc).__name__}")
    fut.set_exception(exc)
