"""Statistics: counters, mailbox depth, latency samples, dead letters, the snapshot."""

from __future__ import annotations

from typing import Any

import anyio
import msgspec
import pytest

from bus import Actor, ActorStatistics, RestartPolicy, open_bus
from bus._runtime.stats import LATENCY_SAMPLE_EVERY, ActorCounters
from contracts import BusConfig

QUICK = BusConfig(shutdown_deadline_s=0.2)


class Worker(Actor):
    def __init__(self, release: anyio.Event) -> None:
        self.release = release

    async def receive(self, message: Any) -> Any:
        if message == "hold":
            await self.release.wait()
        elif message == "fail":
            raise ValueError("asked to fail")
        elif message == "crash":
            raise RuntimeError("crash during a tell")
        else:
            await anyio.sleep(0)  # a handler that takes some time
        return message


def by_name(bus: Any) -> dict[str, ActorStatistics]:
    return {a.name: a for a in bus.statistics().actors}


@pytest.mark.anyio
async def test_counters_follow_what_each_actor_handled() -> None:
    release = anyio.Event()
    policy = RestartPolicy(max_restarts=5, backoff_s=0.001)
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Worker(release), name="worker", restart=policy)
        bus.spawn(lambda: Worker(release), name="idle")
        for n in range(10):
            assert await ref.ask(n, timeout=5) == n
        with pytest.raises(ValueError):
            await ref.ask("fail", timeout=5)
        await ref.tell("crash")
        assert await ref.ask("after", timeout=5) == "after"
        stats = by_name(bus)
    worker = stats["worker"]
    assert worker.messages_out == 13
    assert worker.messages_in == 13
    assert worker.failures == 2
    assert worker.restarts == 1
    assert worker.activations == 2
    assert worker.live == 1
    assert not worker.keyed
    assert stats["idle"].messages_in == 0
    assert stats["idle"].activations == 0
    assert stats["idle"].live == 0


@pytest.mark.anyio
async def test_mailbox_depth_counts_what_is_queued_now() -> None:
    release = anyio.Event()
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Worker(release), name="worker")
        await ref.tell("hold")
        await anyio.sleep(0.01)
        for n in range(7):
            await ref.tell(n)
        held = by_name(bus)["worker"]
        release.set()
        await ref.ask("done", timeout=5)
        drained = by_name(bus)["worker"]
    assert held.mailbox_depth == 7
    assert held.messages_in == 7
    assert drained.mailbox_depth == 0
    assert drained.messages_out == 9


@pytest.mark.anyio
async def test_handling_latency_is_sampled() -> None:
    release = anyio.Event()
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Worker(release), name="worker")
        assert by_name(bus)["worker"].latency_max_us == 0
        for n in range(LATENCY_SAMPLE_EVERY * 4):
            await ref.tell(n)
        await ref.ask("done", timeout=5)
        worker = by_name(bus)["worker"]
    assert worker.latency_p50_us > 0
    assert worker.latency_max_us >= worker.latency_p99_us >= worker.latency_p50_us


@pytest.mark.anyio
async def test_keyed_instances_are_reported_together_by_kind() -> None:
    release = anyio.Event()
    async with open_bus(QUICK) as bus:
        bus.register(Worker, lambda key: Worker(release), max_live=2)
        for key in ("a", "b", "c"):
            await bus.ref(Worker, key).ask(key, timeout=5)
            await anyio.sleep(0.01)
        await bus.ref(Worker, "a").tell("hold")
        await bus.ref(Worker, "a").tell("queued")
        await anyio.sleep(0.01)
        keyed = by_name(bus)["Worker"]
        release.set()
    assert keyed.keyed
    assert keyed.live == 2
    assert keyed.activations == 4  # a, b, c, then a again after the bound passivated it
    assert keyed.passivations == 2
    assert keyed.mailbox_depth == 1
    assert keyed.messages_out == 3


@pytest.mark.anyio
async def test_dead_letters_and_topics_are_reported() -> None:
    async with open_bus(QUICK) as bus:
        policy = RestartPolicy(max_restarts=0)
        ref = bus.spawn(lambda: Worker(anyio.Event()), name="worker", restart=policy)
        await ref.tell("crash")
        await anyio.sleep(0.01)
        await ref.tell(1)
        await ref.tell(2)
        bus.topic("news").subscribe()
        stats = bus.statistics()
        assert not stats.draining
    assert stats.dead_letters.count == 2
    assert stats.dead_letters.recent == ["worker: int (actor stopped)"] * 2
    assert stats.topics == {"news": 1}
    worker = stats.actors[0]
    assert worker.messages_in == worker.messages_out + 2
    encoded = msgspec.json.decode(msgspec.json.encode(stats))
    assert encoded["dead_letters"]["count"] == 2
    assert encoded["actors"][0]["name"] == "worker"


def test_the_latency_reservoir_keeps_the_most_recent_samples() -> None:
    counters = ActorCounters("c")
    for n in range(1, 1025):
        counters.sample(n / 1e6)
    assert counters.snapshot(keyed=False, live=1, depth=0).latency_p50_us == 513
    counters.sample(5.0)  # one huge sample replaces the oldest
    for _ in range(1023):
        counters.sample(2e-6)
    snap = counters.snapshot(keyed=False, live=1, depth=0)
    assert len(counters.samples) == 1024
    assert snap.latency_p50_us == 2
    assert snap.latency_p99_us == 2
    assert snap.latency_max_us == 5_000_000


def test_a_snapshot_derives_messages_in_from_handled_queued_and_dead() -> None:
    counters = ActorCounters("c")
    counters.messages_out = 10
    counters.dead = 3
    snap = counters.snapshot(keyed=True, live=4, depth=5)
    assert (snap.messages_in, snap.messages_out, snap.mailbox_depth) == (18, 10, 5)
    assert (snap.keyed, snap.live, snap.latency_p50_us) == (True, 4, 0.0)
