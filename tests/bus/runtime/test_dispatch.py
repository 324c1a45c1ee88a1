"""The drain strategies: each actor shape gets its own, chosen once per started instance."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import anyio
import pytest

import bus._runtime.cell as cell_module
from bus import Actor, Later, RestartPolicy, open_bus
from bus._runtime.dispatch import (
    AWAITED,
    BATCHES,
    CALLBACK,
    DIRECT,
    UNSTARTED,
    Dispatch,
    dispatch_for,
)
from contracts import BusConfig

pytestmark = pytest.mark.anyio

QUICK = BusConfig(shutdown_deadline_s=0.2)


class Awaited(Actor):
    """A coroutine ``receive``: drained in a task, each message awaited."""

    async def receive(self, message: Any) -> Any:
        await asyncio.sleep(0)
        return ("awaited", message, asyncio.current_task() is not None)


class Direct(Actor):
    """A plain-method ``receive``: drained in a task, each message called."""

    def receive(self, message: Any) -> Any:  # type: ignore[override]
        if message == "crash":
            raise RuntimeError("crash")
        return ("direct", message)


class Batches(Actor):
    """A coroutine ``receive_batch``: drained in a task, batch by batch."""

    batch_size = 8

    def __init__(self) -> None:
        self.sizes: list[int] = []

    async def receive_batch(self, messages: Sequence[Any]) -> Sequence[Any]:
        self.sizes.append(len(messages))
        return [("batches", m) for m in messages]


class Callback(Actor):
    """A plain-method ``receive_batch``: drained by loop callbacks, no task at all."""

    batch_size = 8

    def __init__(self) -> None:
        self.in_task: list[bool] = []
        self.held: Later | None = None

    def receive_batch(self, messages: Sequence[Any]) -> Any:  # type: ignore[override]
        self.in_task.append(_in_a_task())
        if messages[0] == "later":
            self.held = Later()
            return self.held
        return [("callback", m) for m in messages]


def _in_a_task() -> bool:
    try:
        return asyncio.current_task() is not None
    except RuntimeError:
        return False


@pytest.mark.parametrize(
    ("kind", "strategy"),
    [(Awaited, AWAITED), (Direct, DIRECT), (Batches, BATCHES), (Callback, CALLBACK)],
)
def test_each_actor_shape_gets_its_strategy(kind: type[Actor], strategy: Dispatch) -> None:
    assert dispatch_for(kind()) is strategy
    assert strategy is not UNSTARTED


@pytest.mark.parametrize("kind", [Awaited, Direct, Batches, Callback])
async def test_the_strategy_is_chosen_once_per_started_instance(
    kind: type[Actor], monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen: list[Dispatch] = []

    def counting(actor: Actor) -> Dispatch:
        strategy = dispatch_for(actor)
        chosen.append(strategy)
        return strategy

    monkeypatch.setattr(cell_module, "dispatch_for", counting)
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(kind, name="one")
        for round_ in range(5):  # five activations: each drains, lingers, ends
            answers = await asyncio.gather(*(ref.ask(i, timeout=5) for i in range(3)))
            assert [a[1] for a in answers] == [0, 1, 2]
            await anyio.sleep(0.01)
            assert ref._cell.activation is None, f"activation {round_} ended"
        assert ref._cell.dispatch is dispatch_for(kind())
    assert chosen == [dispatch_for(kind())]


async def test_awaited_and_direct_handle_one_message_at_a_time_in_a_task() -> None:
    async with open_bus(QUICK) as bus:
        awaited = bus.spawn(Awaited, name="awaited")
        direct = bus.spawn(Direct, name="direct")
        assert await awaited.ask("m", timeout=5) == ("awaited", "m", True)
        assert await direct.ask("m", timeout=5) == ("direct", "m")
        pending = [direct.try_ask(i, timeout=5) for i in range(3)]
        activation = direct._cell.activation
        assert isinstance(activation, asyncio.Task)
        assert [await p for p in pending] == [("direct", i) for i in range(3)]


async def test_batches_are_drained_in_a_task_in_batches_of_the_actors_size() -> None:
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(Batches, name="batches")
        await ref.ask("start", timeout=5)
        pending = [ref.try_ask(i, timeout=5) for i in range(20)]
        assert isinstance(ref._cell.activation, asyncio.Task)
        assert [await p for p in pending] == [("batches", i) for i in range(20)]
        actor = ref._cell.actor
        assert isinstance(actor, Batches)
        assert actor.sizes[1:] == [8, 8, 4]


async def test_a_started_direct_batch_actor_is_drained_by_callbacks_and_held_by_a_later() -> None:
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(Callback, name="callback")
        assert await ref.ask("start", timeout=5) == ("callback", "start")  # starts in a task
        pending = [ref.try_ask(i, timeout=5) for i in range(10)]
        activation = ref._cell.activation
        # A scheduled loop callback (asyncio's Handle or uvloop's): no task, no future.
        assert activation is not None
        assert not isinstance(activation, asyncio.Future | Later)
        assert [await p for p in pending] == [("callback", i) for i in range(10)]
        actor = ref._cell.actor
        assert isinstance(actor, Callback)
        assert actor.in_task[1:] == [False, False]

        held = ref.try_ask("later", timeout=5)
        await wait_for(lambda: actor.held is not None)
        queued = ref.try_ask("queued", timeout=5)
        later = actor.held
        assert later is not None and ref._cell.activation is later  # it holds the actor
        await anyio.sleep(0.01)
        assert not queued.done(), "mail queues behind a batch in flight"
        later.resolve([("resolved", "later")])
        assert await held == ("resolved", "later")
        assert await queued == ("callback", "queued")


async def test_a_crash_restarts_with_the_strategy_chosen_again_for_the_new_instance(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chosen: list[Dispatch] = []

    def counting(actor: Actor) -> Dispatch:
        chosen.append(dispatch_for(actor))
        return chosen[-1]

    monkeypatch.setattr(cell_module, "dispatch_for", counting)
    policy = RestartPolicy(max_restarts=3, window_s=60, backoff_s=0.001)
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(Direct, name="direct", restart=policy)
        ref.try_tell("crash")
        assert await ref.ask("after", timeout=5) == ("direct", "after")
    assert chosen == [DIRECT, DIRECT]


async def wait_for(predicate: Any, limit: float = 5.0) -> None:
    with anyio.fail_after(limit):
        while not predicate():
            await anyio.sleep(0.001)
