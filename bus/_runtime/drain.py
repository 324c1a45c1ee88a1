"""The loops that drain a mailbox inside an activation task, one per handler shape.

``dispatch.py`` picks one per started actor and runs it from the activation task
while there is mail. Each handles up to ``THROUGHPUT`` messages between yields to
the loop, for fairness. The coroutine and the plain ``receive`` loops differ only
in an ``await`` per message, which cannot be shared without a cost on every
message; everything a loop needs per message is bound to a local before it starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from time import perf_counter
from typing import Any

from contracts import ShuttingDown

from .mailbox import Ask, fail
from .ports import CellPort
from .stats import LATENCY_SAMPLE_EVERY, ActorCounters

__all__ = [
    "THROUGHPUT",
    "being_cancelled",
    "drain_awaited",
    "drain_batches",
    "drain_direct",
    "reply",
    "yield_to_loop",
]

#: Messages an activation handles before it yields to other tasks.
THROUGHPUT = 512

_SAMPLE_MASK = LATENCY_SAMPLE_EVERY - 1


async def yield_to_loop() -> None:
    """Let every other ready task and callback run once."""
    await asyncio.sleep(0)


def drain_awaited(cell: CellPort) -> Coroutine[Any, Any, None]:
    """Handle queued messages one at a time with a coroutine ``receive``."""
    return drain_singly(cell, awaited=True)


def drain_direct(cell: CellPort) -> Coroutine[Any, Any, None]:
    """Handle queued messages one at a time with a plain-method ``receive``.

    No coroutine is made per message: the handler is called, not awaited.
    """
    return drain_singly(cell, awaited=False)


async def drain_singly(cell: CellPort, *, awaited: bool) -> None:
    """The loop of :func:`drain_awaited` and :func:`drain_direct`: one message at a time.

    The two differ only in whether the handler's result is awaited, and so in
    cancellation: only an awaited handler can be cancelled.
    """
    mailbox = cell.mailbox
    queue = mailbox.queue
    popleft = queue.popleft
    waiters = mailbox.waiters
    counters = cell.counters
    receive = _receive(cell)
    handled = 0
    try:
        while queue:
            message = popleft()
            if type(message) is Ask:
                fut = message.fut
                message = message.message
            else:
                fut = None
            if waiters:
                mailbox.wake_one()
            handled += 1
            sampled = not handled & _SAMPLE_MASK
            if sampled:
                t0 = perf_counter()
            try:
                result = receive(message)
                if awaited:
                    result = await result
            except Exception as exc:
                if not await cell.failed(exc, fut):
                    return
                receive = _receive(cell)
                continue
            except BaseException as exc:
                # A cancellation of an awaited handler, or (awaited or not) a
                # CancelledError the handler passed on or an interrupt: either
                # leaves this loop, and the asker must get an answer.
                if fut is not None and not fut.done():
                    fut.set_exception(_interruption(cell.label(), exc))
                raise
            if fut is not None and not fut.done():
                fut.set_result(result)
            if sampled:
                counters.sample(perf_counter() - t0)
                if handled >= THROUGHPUT:
                    counters.messages_out += handled
                    handled = 0
                    await yield_to_loop()
    finally:
        counters.messages_out += handled


def _receive(cell: CellPort) -> Callable[[Any], Any]:
    actor = cell.actor
    assert actor is not None
    return actor.receive


async def drain_batches(cell: CellPort) -> None:
    """Hand a batch actor (coroutine ``receive_batch``) what is queued, batch by batch."""
    mailbox = cell.mailbox
    queue = mailbox.queue
    counters = cell.counters
    while queue:
        actor = cell.actor
        assert actor is not None
        items = mailbox.take(actor.batch_size)
        t0 = perf_counter()
        try:
            results = await actor.receive_batch([i.message if type(i) is Ask else i for i in items])
            if len(results) != len(items):
                raise miscounted(cell.label(), results, items)
        except Exception as exc:
            if fail_batch(counters, items, exc) and not await cell.crashed(exc):
                return
            continue
        except BaseException as exc:
            for item in items:
                if type(item) is Ask and not item.fut.done():
                    item.fut.set_exception(_interruption(cell.label(), exc))
            raise
        counters.sample(perf_counter() - t0)
        reply(counters, items, results)
        if queue:
            # More mail: let the askers just answered run before the next batch.
            # An empty mailbox needs no yield here: the activation lingers a cycle.
            await yield_to_loop()


def reply(counters: ActorCounters, items: list[Any], results: Sequence[Any]) -> None:
    """Answer each ask of a handled batch with its entry of ``results``."""
    counters.messages_out += len(items)
    for item, result in zip(items, results, strict=True):
        if isinstance(result, BaseException):
            counters.failures += 1
            if type(item) is Ask:
                fail(item.fut, result)
        elif type(item) is Ask:
            fut = item.fut
            if not fut.done():
                fut.set_result(result)


def fail_batch(counters: ActorCounters, items: list[Any], exc: BaseException) -> bool:
    """A whole batch failed with ``exc``: count it and fail each of its asks.

    Returns:
        Whether a tell was in the batch: a crash, which the caller restarts.
    """
    counters.failures += 1
    counters.messages_out += len(items)
    told = False
    for item in items:
        if type(item) is Ask:
            fail(item.fut, exc)
        else:
            told = True
    return told


def miscounted(label: str, results: Sequence[Any], items: list[Any]) -> RuntimeError:
    """The error of a batch answered with a number of replies other than its size."""
    return RuntimeError(f"{label} answered {len(results)} of {len(items)} messages")


def being_cancelled() -> bool:
    """Whether this task was asked to stop (not merely handed a CancelledError)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _interruption(label: str, exc: BaseException) -> Exception:
    """What the asker of a message whose handling was cut short gets."""
    if being_cancelled():
        return ShuttingDown(f"{label} stopped mid-message")
    return RuntimeError(f"{label}: the handler raised {type(exc).__name__}")
