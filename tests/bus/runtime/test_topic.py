"""Topics: delivery, the overflow policies, publishing without waiting, closing."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import anyio
import pytest

from bus import SubscriberLagged, Subscription, Topic, open_bus

pytestmark = pytest.mark.anyio


async def drain(sub: Subscription) -> list[Any]:
    with anyio.fail_after(5):
        return [item async for item in sub]


async def test_every_subscriber_gets_every_item_in_order() -> None:
    async with open_bus() as bus:
        first = bus.topic("events").subscribe()
        second = bus.topic("events").subscribe()
        assert bus.publish("nobody listens here", "x") == 0
        for n in range(5):
            assert bus.publish("events", n) == 2
        assert bus.statistics().topics == {"events": 2}
    assert await drain(first) == [0, 1, 2, 3, 4]
    assert await drain(second) == [0, 1, 2, 3, 4]


async def test_a_waiting_subscriber_is_woken_by_a_publish() -> None:
    async with open_bus() as bus:
        sub = bus.topic("events").subscribe()
        received: list[Any] = []

        async def follow() -> None:
            async for item in sub:
                received.append(item)
                if item == "last":
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(follow)
            await anyio.sleep(0.01)
            bus.publish("events", "first")
            await anyio.sleep(0.01)
            assert received == ["first"]
            bus.publish("events", "last")
    assert received == ["first", "last"]


async def test_a_lagging_subscriber_under_close_gets_its_buffer_then_subscriber_lagged() -> None:
    async with open_bus() as bus:
        topic = bus.topic("events")
        lagging = topic.subscribe(max_buffer=3)
        keeping_up = topic.subscribe(max_buffer=100)
        delivered = [bus.publish("events", n) for n in range(6)]
        assert delivered == [2, 2, 2, 1, 1, 1]
        assert topic.subscriber_count == 1
        received: list[Any] = []
        with pytest.raises(SubscriberLagged) as caught:
            async for item in lagging:
                received.append(item)
        assert received == [0, 1, 2]
        assert caught.value.dropped == 1
        assert caught.value.status == 503
        assert "more than 3 items" in caught.value.message
        assert [keeping_up.get_nowait() for _ in range(6)] == list(range(6))
        # After the error the subscription is simply over.
        assert await drain(lagging) == []


async def test_drop_oldest_keeps_the_newest_items_and_counts_the_dropped() -> None:
    async with open_bus() as bus:
        sub = bus.topic("events").subscribe(max_buffer=3, overflow="drop_oldest")
        for n in range(10):
            assert bus.publish("events", n) == 1
        assert sub.dropped == 7
        assert sub.pending() == 3
    assert await drain(sub) == [7, 8, 9]


async def test_drop_newest_keeps_the_oldest_items_and_counts_the_dropped() -> None:
    async with open_bus() as bus:
        sub = bus.topic("events").subscribe(max_buffer=3, overflow="drop_newest")
        for n in range(10):
            bus.publish("events", n)
        assert sub.dropped == 7
    assert await drain(sub) == [0, 1, 2]


async def test_publishing_never_waits_even_for_a_subscriber_that_never_reads() -> None:
    assert not inspect.iscoroutinefunction(Topic.publish)
    async with open_bus() as bus:
        stuck = [
            bus.topic("events").subscribe(max_buffer=1, overflow=policy)
            for policy in ("drop_oldest", "drop_newest")
        ]
        yielded: list[bool] = []
        asyncio.get_running_loop().call_soon(yielded.append, True)
        for n in range(10_000):
            bus.publish("events", n)
        assert yielded == [], "publish gave control to the loop"
        assert [s.dropped for s in stuck] == [9_999, 9_999]


async def test_closing_the_bus_ends_every_subscription_after_its_buffer() -> None:
    received: list[Any] = []
    async with anyio.create_task_group() as tg:
        async with open_bus() as bus:
            sub = bus.topic("events").subscribe()

            async def follow() -> None:
                async for item in sub:
                    received.append(item)
                received.append("ended")

            tg.start_soon(follow)
            bus.publish("events", 1)
            bus.publish("events", 2)
        with anyio.fail_after(5):
            while "ended" not in received:
                await anyio.sleep(0.001)
    assert received == [1, 2, "ended"]
    assert bus.statistics().topics == {"events": 0}


async def test_a_subscription_opened_after_the_bus_closed_ends_at_once() -> None:
    async with open_bus() as bus:
        bus.topic("events").subscribe()
    late = bus.topic("events").subscribe()
    fresh = bus.topic("never used before").subscribe()
    assert await drain(late) == []
    assert await drain(fresh) == []
    assert bus.publish("events", "after close") == 0


async def test_leaving_a_subscription_stops_delivery_to_it() -> None:
    async with open_bus() as bus:
        topic = bus.topic("events")
        async with topic.subscribe() as sub:
            bus.publish("events", 1)
            assert sub.pending() == 1
        assert topic.subscriber_count == 0
        assert bus.publish("events", 2) == 0
        assert await drain(sub) == []
        with pytest.raises(LookupError):
            sub.get_nowait()


async def test_subscription_bounds_and_policies_are_checked() -> None:
    async with open_bus() as bus:
        topic = bus.topic("events")
        with pytest.raises(ValueError, match="max_buffer"):
            topic.subscribe(max_buffer=0)
        with pytest.raises(ValueError, match="overflow policy"):
            topic.subscribe(overflow="block")  # type: ignore[arg-type]
        assert topic.subscriber_count == 0
        assert topic.name == "events"
