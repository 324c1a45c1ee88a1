"""How an activation handles a cell's mail: the strategies, chosen once per actor instance.

An actor has no task of its own while idle. Mail to an idle actor starts one
activation, which drains the mailbox (yielding to the loop every ``THROUGHPUT``
messages, for fairness) and ends when it is empty. Idle actors so cost a few
hundred bytes, and a burst of mail costs one activation, not one per message.

:func:`dispatch_for` picks the strategy when an actor instance has started (its
class says which); the cell holds it as ``cell.dispatch`` until the instance
stops, and every activation of the cell uses it:

- ``AWAITED``, ``DIRECT``, ``BATCHES``: an activation task (:func:`run`) runs the
  strategy's drain loop from ``drain.py`` (coroutine ``receive``, plain
  ``receive``, ``receive_batch``) while there is mail, then lingers one loop
  cycle for follow-up mail.
- ``CALLBACK``: a started direct batch actor, drained by a loop callback
  (:func:`run_now`) with no task at all; a batch answered later holds the actor.
- ``UNSTARTED``: no instance has started. The activation is a task, since
  ``on_start`` may wait, and goes on with the started instance's strategy.

Every activation ends with ``Cell.end_activation``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Sequence
from time import perf_counter
from typing import Any

from contracts import ShuttingDown

from .actor import Actor
from .drain import (
    THROUGHPUT,
    being_cancelled,
    drain_awaited,
    drain_batches,
    drain_direct,
    fail_batch,
    miscounted,
    reply,
    yield_to_loop,
)
from .later import Later
from .mailbox import Ask
from .ports import Activation, CellPort, Dispatch
from .stats import LATENCY_SAMPLE_EVERY

__all__ = [
    "AWAITED",
    "BATCHES",
    "CALLBACK",
    "DIRECT",
    "THROUGHPUT",
    "UNSTARTED",
    "Activation",
    "Dispatch",
    "dispatch_for",
    "recover",
    "run",
    "run_now",
]

_SAMPLE_MASK = LATENCY_SAMPLE_EVERY - 1


def dispatch_for(actor: Actor) -> Dispatch:
    """The strategy for a started actor instance, from what its class defines."""
    if actor.direct_batch:
        return CALLBACK
    if actor.batch_size > 0:
        return BATCHES
    if actor.direct:
        return DIRECT
    return AWAITED


# ---- in a task -------------------------------------------------------------


def _in_task(cell: CellPort) -> asyncio.Task[None]:
    return cell.loop.create_task(run(cell))


async def run(cell: CellPort) -> None:
    """The body of an activation task: start if needed, drain, linger, end."""
    handed_over = False
    try:
        if cell.dispatch is UNSTARTED:
            await cell.start()
        if cell.dispatch is CALLBACK:
            # Started: a direct batch actor is drained by loop callbacks from now on;
            # the callback takes over this activation (and its count).
            cell.activation = cell.loop.call_soon(run_now, cell)
            handed_over = True
            return
        queue = cell.mailbox.queue
        while not cell.state:  # OPEN
            if queue:
                # Read each time: a restart inside a drain makes a new instance.
                drain = cell.dispatch.drain
                assert drain is not None
                try:
                    await drain(cell)
                except asyncio.CancelledError:
                    if being_cancelled():
                        raise
                    # A handler let out a CancelledError of its own (it awaited
                    # something that was cancelled): a failed message, already
                    # answered; ending here would strand the rest of the mailbox.
                    cell.counters.failures += 1
                continue
            await yield_to_loop()  # linger one loop cycle: follow-up mail reuses this task
            if not queue:
                break
    finally:
        if not handed_over:
            cell.end_activation()


def _in_callback(cell: CellPort) -> asyncio.Handle:
    return cell.loop.call_soon(run_now, cell)


def run_now(cell: CellPort) -> None:
    """One activation of a started direct batch actor, run as a loop callback.

    A batch answered with a future or a :class:`Later` holds the actor until it
    completes (it is the activation meanwhile): mail queues up and becomes the
    next batch, as an awaited batch would.
    """
    actor = cell.actor
    assert actor is not None
    mailbox = cell.mailbox
    queue = mailbox.queue
    counters = cell.counters
    size = actor.batch_size
    handled = 0
    while queue and not cell.state:  # OPEN
        items = mailbox.take(size)
        t0 = perf_counter()
        try:
            # A plain method (direct_batch): the replies, or a future of them.
            results: Any = actor.receive_batch([i.message if type(i) is Ask else i for i in items])
            if (
                type(results) is not Later
                and not isinstance(results, asyncio.Future)
                and len(results) != len(items)
            ):
                raise miscounted(cell.label(), results, items)
        except Exception as exc:
            if fail_batch(counters, items, exc):
                # Restarting waits out a backoff: that takes a task.
                cell.activation = cell.loop.create_task(recover(cell, exc))
                return
            continue
        if not counters.messages_out & _SAMPLE_MASK:
            counters.sample(perf_counter() - t0)
        if type(results) is Later:
            if not results.done():
                cell.activation = results
                results.then(functools.partial(_answer_later, cell, items))
                return
            _settle(cell, items, results)  # answered within the call
        elif isinstance(results, asyncio.Future):
            cell.activation = results
            results.add_done_callback(functools.partial(_answer_later, cell, items))
            return
        else:
            reply(counters, items, results)
        handled += len(items)
        if handled >= THROUGHPUT and queue:
            # Fairness: let other callbacks and tasks run before the rest.
            cell.activation = cell.loop.call_soon(run_now, cell)
            return
    cell.end_activation()


def _answer_later(cell: CellPort, items: list[Any], fut: asyncio.Future[Any] | Later) -> None:
    """A batch answered with a future or a Later completed: answer its askers, go on."""
    _settle(cell, items, fut)
    if cell.mailbox.queue and not cell.state:  # OPEN
        run_now(cell)  # the next batch, in the same activation
        return
    cell.end_activation()


def _settle(cell: CellPort, items: list[Any], fut: asyncio.Future[Any] | Later) -> None:
    """Answer a batch's askers from its completed future or Later."""
    counters = cell.counters
    if type(fut) is Later:
        results = fut.result()  # None unless resolved
        if type(results) is list and len(results) == len(items):
            reply(counters, items, results)  # the usual answer, without the checks below
            return
    if fut.cancelled():
        error: BaseException | None = ShuttingDown(f"{cell.label()}: stopped before it answered")
    else:
        error = fut.exception()
        if error is None:
            results = fut.result()
            # Raising here, in a loop callback, would strand the actor with its
            # activation set: an unusable answer fails the batch instead.
            if type(results) is not list and not isinstance(results, Sequence):
                error = TypeError(f"{cell.label()} answered a batch with {type(results).__name__}")
            elif len(results) == len(items):
                reply(counters, items, results)
            else:
                error = miscounted(cell.label(), results, items)
    if error is not None:
        fail_batch(counters, items, error)


async def recover(cell: CellPort, exc: Exception) -> None:
    """Restart a direct batch actor that crashed in a callback, then drain on."""
    try:
        if not await cell.crashed(exc):
            return
    finally:
        cell.end_activation()
    if cell.mailbox.queue and not cell.state:  # OPEN
        cell.activate()


UNSTARTED = Dispatch("unstarted", _in_task, None)
AWAITED = Dispatch("awaited", _in_task, drain_awaited)
DIRECT = Dispatch("direct", _in_task, drain_direct)
BATCHES = Dispatch("batches", _in_task, drain_batches)
CALLBACK = Dispatch("callback", _in_callback, None)
