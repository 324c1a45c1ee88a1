"""The actor base class and ActorRef: tell, try_tell, ask, try_ask, backpressure."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import anyio
import pytest

from bus import Actor, ActorRef, AskTimeout, open_bus
from contracts import BusConfig, Overloaded

pytestmark = pytest.mark.anyio

QUICK = BusConfig(shutdown_deadline_s=0.2)


class Gate(Actor):
    """Records what it handles; a message ``"wait"`` holds it until ``opened`` is set."""

    def __init__(self, opened: anyio.Event, seen: list[Any]) -> None:
        self.opened = opened
        self.seen = seen

    async def receive(self, message: Any) -> Any:
        if message == "wait":
            await self.opened.wait()
        self.seen.append(message)
        return message


class Failing(Actor):
    """Raises for ``"bad"``; counts instances so a restart would show."""

    instances = 0

    def __init__(self) -> None:
        Failing.instances += 1
        self.handled = 0

    async def receive(self, message: Any) -> Any:
        self.handled += 1
        if message == "bad":
            raise KeyError("the handler's own error")
        return (id(self), self.handled)


async def wait_until(predicate: Any, limit: float = 5.0) -> None:
    with anyio.fail_after(limit):
        while not predicate():
            await anyio.sleep(0.001)


async def test_tell_queues_at_once_when_the_mailbox_has_room() -> None:
    seen: list[Any] = []
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Gate(anyio.Event(), seen), name="gate")
        pending = ref.tell(1)
        # Queued by the call itself: the awaitable is already complete, never yields.
        assert isinstance(pending, asyncio.Future)
        assert pending.done()
        await pending
        assert await ref.ask(2, timeout=5) == 2
    assert seen == [1, 2]


async def test_a_full_mailbox_makes_tell_wait_until_room_appears() -> None:
    opened = anyio.Event()
    seen: list[Any] = []
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Gate(opened, seen), name="gate", mailbox_size=2)
        await ref.tell("wait")
        await wait_until(lambda: bus.statistics().actors[0].mailbox_depth == 0)
        await ref.tell(1)
        await ref.tell(2)  # the mailbox is now full
        told = anyio.Event()

        async def producer() -> None:
            await ref.tell(3)
            told.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            await anyio.sleep(0.02)
            assert not told.is_set(), "tell returned although the mailbox was full"
            assert bus.statistics().actors[0].mailbox_depth == 2
            opened.set()
            with anyio.fail_after(5):
                await told.wait()
        assert await ref.ask("done", timeout=5) == "done"
    assert seen == ["wait", 1, 2, 3, "done"]


async def test_try_tell_and_try_ask_raise_overloaded_when_the_mailbox_is_full() -> None:
    opened = anyio.Event()
    seen: list[Any] = []
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Gate(opened, seen), name="gate", mailbox_size=1)
        ref.try_tell("wait")
        await wait_until(lambda: bus.statistics().actors[0].mailbox_depth == 0)
        ref.try_tell(1)
        with pytest.raises(Overloaded):
            ref.try_tell(2)
        with pytest.raises(Overloaded):
            ref.try_ask(3)
        assert bus.statistics().actors[0].mailbox_depth == 1
        opened.set()
        assert await ref.ask(4, timeout=5) == 4
    assert seen == ["wait", 1, 4]


class Refiller(Actor):
    """On ``"refill"`` takes the room it just made with a message of its own, then holds."""

    def __init__(self, gates: dict[str, anyio.Event], me: list[ActorRef]) -> None:
        self.gates = gates
        self.me = me

    async def receive(self, message: Any) -> Any:
        if message == "refill":
            self.me[0].try_tell("own")
        if message in self.gates:
            await self.gates[message].wait()
        return message


async def test_an_ask_woken_for_room_waits_again_if_the_room_was_taken() -> None:
    gates = {"hold": anyio.Event(), "refill": anyio.Event()}
    me: list[ActorRef] = []
    depths: list[int] = []
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Refiller(gates, me), name="refiller", mailbox_size=1)
        me.append(ref)
        await ref.tell("hold")
        await wait_until(lambda: bus.statistics().actors[0].mailbox_depth == 0)
        await ref.tell("refill")  # the mailbox is full
        async with anyio.create_task_group() as tg:
            replies: list[Any] = []

            async def asker() -> None:
                replies.append(await ref.ask("asked", timeout=5))

            tg.start_soon(asker)
            await anyio.sleep(0.01)
            gates["hold"].set()  # frees the room, which "refill" takes back at once
            for _ in range(20):
                depths.append(bus.statistics().actors[0].mailbox_depth)
                await anyio.sleep(0)
            gates["refill"].set()
        assert replies == ["asked"]
    assert max(depths) <= 1, f"the mailbox of size 1 held {max(depths)}"


async def test_ask_on_a_full_mailbox_still_times_out() -> None:
    opened = anyio.Event()
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Gate(opened, []), name="gate", mailbox_size=1)
        await ref.tell("wait")
        await wait_until(lambda: bus.statistics().actors[0].mailbox_depth == 0)
        await ref.tell(1)
        with anyio.fail_after(1), pytest.raises(AskTimeout):
            await ref.ask(2, timeout=0.05)
        opened.set()
        assert await ref.ask(3, timeout=5) == 3


async def test_ask_times_out_and_the_late_reply_breaks_nothing() -> None:
    opened = anyio.Event()
    seen: list[Any] = []
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Gate(opened, seen), name="gate")
        with pytest.raises(AskTimeout) as caught:
            await ref.ask("wait", timeout=0.02)
        assert caught.value.status == 504
        opened.set()
        assert await ref.ask("after", timeout=5) == "after"
        stats = bus.statistics().actors[0]
        assert stats.messages_out == 2
        assert stats.failures == 0
    assert seen == ["wait", "after"]


async def test_a_handler_exception_reaches_the_asker_and_the_actor_keeps_running() -> None:
    Failing.instances = 0
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(Failing, name="failing")
        first, _ = await ref.ask("ok", timeout=5)
        with pytest.raises(KeyError, match="the handler's own error"):
            await ref.ask("bad", timeout=5)
        same, handled = await ref.ask("ok", timeout=5)
        stats = bus.statistics().actors[0]
    assert same == first, "the actor was replaced after an ask failed"
    assert handled == 3, "the actor's state was lost"
    assert Failing.instances == 1
    assert stats.failures == 1
    assert stats.restarts == 0


async def test_try_ask_queues_at_once_so_order_is_the_call_order() -> None:
    seen: list[Any] = []
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Gate(anyio.Event(), seen), name="gate")
        later = [ref.try_ask(n, timeout=5) for n in range(5)]
        assert bus.statistics().actors[0].mailbox_depth == 5
        results = [await pending for pending in reversed(later)]
    assert results == [4, 3, 2, 1, 0]
    assert seen == [0, 1, 2, 3, 4]


class Silent(Actor):
    pass


async def test_an_actor_without_a_receive_answers_with_not_implemented() -> None:
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(Silent, name="silent")
        with pytest.raises(NotImplementedError, match="Silent handles no messages"):
            await ref.ask("anything", timeout=5)


class Batched(Actor):
    async def receive(self, message: Any) -> Any:
        return message * 2


async def test_receive_batch_defaults_to_receive_for_each_message() -> None:
    actor = Batched()
    replies: Sequence[Any] = await actor.receive_batch([1, 2, 3])
    assert list(replies) == [2, 4, 6]


class Stopper(Actor):
    async def receive(self, message: Any) -> Any:
        raise StopIteration


async def test_a_handler_raising_stop_iteration_reaches_the_asker_as_runtime_error() -> None:
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(Stopper, name="stopper")
        with pytest.raises(RuntimeError, match="StopIteration"):
            await ref.ask(1, timeout=5)


async def test_a_reference_names_its_actor() -> None:
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(Batched, name="doubler")
        bus.register(Batched, lambda key: Batched())
        keyed = bus.ref(Batched, "k1")
        assert ref.name == "doubler"
        assert repr(ref) == "<ActorRef doubler>"
        assert keyed.name == "Batched['k1']"
        assert bus.named("doubler").name == "doubler"
