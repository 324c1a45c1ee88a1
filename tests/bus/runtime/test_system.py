"""The bus: spawning, keyed activation and passivation, dead letters, shutdown."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import anyio
import pytest

from bus import Actor, ActorStopped, RestartPolicy, open_bus
from contracts import BusConfig, ShuttingDown

pytestmark = pytest.mark.anyio

QUICK = BusConfig(shutdown_deadline_s=0.5)


async def wait_until(predicate: Any, limit: float = 5.0) -> None:
    with anyio.fail_after(limit):
        while not predicate():
            await anyio.sleep(0.001)


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


class Session(Actor):
    """A keyed actor whose state (``count``) lives only as long as the instance."""

    def __init__(self, key: str, log: dict[str, list[Any]], events: list[tuple[str, str]]) -> None:
        self.key = key
        self.log = log
        self.events = events
        self.count = 0

    async def on_start(self) -> None:
        self.events.append(("start", self.key))

    async def on_stop(self) -> None:
        self.events.append(("stop", self.key))

    async def receive(self, message: Any) -> Any:
        if isinstance(message, anyio.Event):
            await message.wait()
            return None
        self.count += 1
        self.log[self.key].append(message)
        return self.count


def session_kind(bus: Any, **options: Any) -> tuple[dict[str, list[Any]], list[tuple[str, str]]]:
    log: dict[str, list[Any]] = defaultdict(list)
    events: list[tuple[str, str]] = []
    bus.register(Session, lambda key: Session(key, log, events), **options)
    return log, events


def keyed_stats(bus: Any) -> Any:
    return next(a for a in bus.statistics().actors if a.keyed)


async def test_names_are_unique_and_bounds_must_be_positive() -> None:
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(Echo, name="echo")
        with pytest.raises(ValueError, match="exists"):
            bus.spawn(Echo, name="echo")
        with pytest.raises(ValueError, match="mailbox_size"):
            bus.spawn(Echo, name="empty", mailbox_size=0)
        bus.register(Session, lambda key: Echo())
        with pytest.raises(ValueError, match="registered"):
            bus.register(Session, lambda key: Echo())
        with pytest.raises(ValueError, match="mailbox_size"):
            bus.register("other", lambda key: Echo(), mailbox_size=-1)
        with pytest.raises(KeyError):
            bus.ref("never registered", "k")
        assert await bus.named("echo").ask("hi", timeout=5) == "hi"
        assert await ref.ask("same", timeout=5) == "same"


async def test_a_keyed_actor_is_activated_by_its_first_message() -> None:
    async with open_bus(QUICK) as bus:
        log, events = session_kind(bus)
        ref = bus.ref(Session, "alice")
        await anyio.sleep(0.01)
        assert events == [], "a reference alone activates nothing"
        assert await ref.ask("hello", timeout=5) == 1
        assert events == [("start", "alice")]
        assert await bus.ref(Session, "alice").ask("again", timeout=5) == 2
        assert events == [("start", "alice")], "the same key reaches the same instance"
    assert log == {"alice": ["hello", "again"]}


async def test_an_idle_keyed_actor_is_passivated_and_a_later_message_reactivates_it() -> None:
    async with open_bus(QUICK) as bus:
        log, events = session_kind(bus, idle_s=0.02)
        ref = bus.ref(Session, "alice")
        assert await ref.ask("one", timeout=5) == 1
        assert await ref.ask("two", timeout=5) == 2
        await wait_until(lambda: ("stop", "alice") in events)
        assert events == [("start", "alice"), ("stop", "alice")]
        assert keyed_stats(bus).passivations == 1
        assert keyed_stats(bus).live == 0
        # The reference held across passivation reaches a fresh instance.
        assert await ref.ask("three", timeout=5) == 1
        assert events[-1] == ("start", "alice")
        assert keyed_stats(bus).activations == 2
    assert log == {"alice": ["one", "two", "three"]}


async def test_the_live_bound_passivates_the_least_recently_used_idle_instance() -> None:
    async with open_bus(QUICK) as bus:
        _, events = session_kind(bus, max_live=2)
        for key in ("a", "b", "a"):  # b is now the least recently used
            await bus.ref(Session, key).ask("x", timeout=5)
            await anyio.sleep(0.01)  # its activation has ended: idle, so it may go
        await bus.ref(Session, "c").ask("x", timeout=5)
        await wait_until(lambda: ("stop", "b") in events)
        stats = keyed_stats(bus)
        assert stats.live == 2
        assert stats.passivations == 1
        assert [e for e in events if e[0] == "stop"] == [("stop", "b")]
        assert await bus.ref(Session, "a").ask("x", timeout=5) == 3, "a kept its state"


async def test_a_new_key_is_served_even_when_every_live_instance_is_busy() -> None:
    async with open_bus(QUICK) as bus:
        log, _ = session_kind(bus, max_live=1)
        release = anyio.Event()
        await bus.ref(Session, "busy").tell(release)
        await anyio.sleep(0.01)
        assert await bus.ref(Session, "new").ask("hello", timeout=5) == 1
        await bus.ref(Session, "newer").tell("told")
        assert await bus.ref(Session, "newer").ask("asked", timeout=5) == 2
        release.set()
        assert bus.dead_letters == 0
    assert log == {"new": ["hello"], "newer": ["told", "asked"]}


async def test_a_tell_resolved_before_a_passivation_still_reaches_the_key() -> None:
    async with open_bus(QUICK) as bus:
        log, _ = session_kind(bus, max_live=1)
        ref_a = bus.ref(Session, "a")
        await ref_a.ask("first", timeout=5)
        await anyio.sleep(0.01)  # the activation has ended: "a" is idle
        bus.ref(Session, "b")  # passivates the idle "a" (bound of one)
        pending = ref_a.tell("second")  # resolves to a fresh "a", not yet queued
        bus.ref(Session, "c")  # passivates that fresh, still empty "a"
        await pending
        assert await ref_a.ask("third", timeout=5) == 2
        assert bus.dead_letters == 0
    assert log["a"] == ["first", "second", "third"]


async def test_passivation_mid_stream_keeps_every_message_in_order() -> None:
    keys = [f"k{i}" for i in range(5)]
    per_key = 200
    async with open_bus(BusConfig(shutdown_deadline_s=5)) as bus:
        log, _ = session_kind(bus, idle_s=0.002, max_live=2)
        refs = {key: bus.ref(Session, key) for key in keys}  # held across passivations
        for n in range(per_key):
            for key in keys:
                if n % 7 == 3:
                    await refs[key].ask(n, timeout=5)
                else:
                    await refs[key].tell(n)
            if n % 25 == 0:
                await anyio.sleep(0.01)  # idle long enough to be passivated
        stats = keyed_stats(bus)
    assert {key: log[key] for key in keys} == {key: list(range(per_key)) for key in keys}
    assert stats.passivations > len(keys)
    assert stats.activations > len(keys), "instances were reactivated mid stream"
    assert bus.dead_letters == 0


class Slow(Actor):
    def __init__(self, handled: list[Any]) -> None:
        self.handled = handled

    async def receive(self, message: Any) -> Any:
        await anyio.sleep(0.001)
        self.handled.append(message)
        return message


async def test_leaving_the_bus_drains_every_mailbox_and_answers_every_ask() -> None:
    handled: list[Any] = []
    replies: dict[int, Any] = {}
    async with anyio.create_task_group() as askers:
        async with open_bus(QUICK) as bus:
            refs = [bus.spawn(lambda: Slow(handled), name=f"slow{i}") for i in range(3)]

            async def ask(n: int) -> None:
                replies[n] = await refs[n % 3].ask(n, timeout=5)

            for n in range(30):
                askers.start_soon(ask, n)
            for n in range(30, 60):
                await refs[n % 3].tell(n)
            await anyio.sleep(0)  # the askers have queued their requests
        assert bus.dead_letters == 0
    assert replies == {n: n for n in range(30)}
    assert sorted(handled) == list(range(60))


class Blocker(Actor):
    """Blocks forever on ``"block"`` (an event nobody sets)."""

    def __init__(self, forever: anyio.Event) -> None:
        self.forever = forever

    async def receive(self, message: Any) -> Any:
        if message == "block":
            await self.forever.wait()
        return message


async def test_past_the_deadline_the_rest_is_answered_shutting_down_and_dead_lettered() -> None:
    outcomes: dict[str, Any] = {}

    async def outcome(name: str, send: Any, message: str) -> None:
        try:
            outcomes[name] = await send(message)
        except Exception as exc:
            outcomes[name] = exc

    with anyio.fail_after(5):
        async with (
            anyio.create_task_group() as tg,
            open_bus(BusConfig(shutdown_deadline_s=0.05)) as bus,
        ):
            ref = bus.spawn(lambda: Blocker(anyio.Event()), name="blocker", mailbox_size=3)
            tg.start_soon(outcome, "in-flight ask", ref.ask, "block")
            await anyio.sleep(0.01)
            tg.start_soon(outcome, "queued ask", ref.ask, "queued")
            await anyio.sleep(0.01)
            await ref.tell("told-1")
            await ref.tell("told-2")  # the mailbox is full
            tg.start_soon(outcome, "waiting tell", ref.tell, "no room")
            tg.start_soon(outcome, "waiting ask", ref.ask, "no room either")
            await anyio.sleep(0.01)
    assert isinstance(outcomes["in-flight ask"], ShuttingDown)
    assert "mid-message" in outcomes["in-flight ask"].message
    assert isinstance(outcomes["queued ask"], ShuttingDown)
    assert isinstance(outcomes["waiting tell"], ShuttingDown)
    assert isinstance(outcomes["waiting ask"], ShuttingDown)
    stats = bus.statistics()
    assert stats.dead_letters.count == 3  # the queued ask and both tells
    assert stats.draining


async def test_everything_after_close_raises_shutting_down() -> None:
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(Echo, name="echo")
        bus.register(Session, lambda key: Echo())
        keyed = bus.ref(Session, "k")
        await ref.ask(1, timeout=5)
    with pytest.raises(ShuttingDown):
        await ref.tell(2)
    with pytest.raises(ShuttingDown):
        ref.try_tell(3)
    with pytest.raises(ShuttingDown):
        await ref.ask(4, timeout=5)
    with pytest.raises(ShuttingDown):
        ref.try_ask(5)
    with pytest.raises(ShuttingDown):
        await keyed.tell(6)
    with pytest.raises(ShuttingDown):
        bus.spawn(Echo, name="late")
    with pytest.raises(ShuttingDown):
        bus.ref(Session, "late")


class Forwarder(Actor):
    def __init__(self, target: Any) -> None:
        self.target = target

    async def receive(self, message: Any) -> Any:
        await self.target.tell(message)


async def test_actors_may_message_each_other_while_the_bus_drains() -> None:
    handled: list[Any] = []
    async with open_bus(QUICK) as bus:
        sink = bus.spawn(lambda: Slow(handled), name="sink")
        forwarder = bus.spawn(lambda: Forwarder(sink), name="forwarder")
        for n in range(20):
            await forwarder.tell(n)
    assert handled == list(range(20))
    assert bus.dead_letters == 0


async def test_an_error_inside_the_bus_block_reaches_the_caller_as_itself() -> None:
    with pytest.raises(LookupError, match="from the body"):
        async with open_bus(QUICK) as bus:
            await bus.spawn(Echo, name="echo").ask(1, timeout=5)
            raise LookupError("from the body")
    with pytest.raises(ShuttingDown):
        bus.spawn(Echo, name="after")


async def test_a_dead_letter_is_counted_and_logged_without_its_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Crash(Actor):
        async def receive(self, message: Any) -> Any:
            raise RuntimeError("boom")

    caplog.set_level(logging.WARNING, logger="actorbus.bus")
    secret = "sk-live-do-not-echo-0123456789"
    policy = RestartPolicy(max_restarts=0, backoff_s=0.001)
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(Crash, name="crash", restart=policy)
        await ref.tell("first")
        await wait_until(lambda: bus.statistics().actors[0].live == 0)
        await ref.tell(secret)
        with pytest.raises(ActorStopped):
            await ref.ask({"token": secret}, timeout=5)
        stats = bus.statistics()
    assert stats.dead_letters.count == 2
    assert stats.dead_letters.recent == [
        "crash: str (actor stopped)",
        "crash: dict (actor stopped)",
    ]
    assert "dead letter #1: crash: str" in caplog.text
    assert "dead letter #2: crash: dict" in caplog.text
    assert secret not in caplog.text
    assert "boom" not in caplog.text, "crash logs name the error type, not its message"


async def test_leaving_the_bus_stops_every_started_actor() -> None:
    async with open_bus(QUICK) as bus:
        log, events = session_kind(bus)
        for key in ("a", "b"):
            await bus.ref(Session, key).ask("x", timeout=5)
        bus.ref(Session, "never started")
        assert keyed_stats(bus).live == 2, "a reference alone is not a live instance"
    assert sorted(e for e in events if e[0] == "stop") == [("stop", "a"), ("stop", "b")]
    assert keyed_stats(bus).live == 0
    assert log == {"a": ["x"], "b": ["x"]}


class SlowToStop(Actor):
    """Flushes on stop, slowly: a successor must not overtake the flush."""

    def __init__(self, journal: list[str]) -> None:
        self.journal = journal

    async def on_stop(self) -> None:
        await anyio.sleep(0.05)
        self.journal.append("flushed")

    async def receive(self, message: Any) -> Any:
        self.journal.append(message)
        return message


async def test_a_reactivated_key_starts_only_after_its_predecessor_stopped() -> None:
    journal: list[str] = []
    async with open_bus(QUICK) as bus:
        bus.register(SlowToStop, lambda key: SlowToStop(journal), idle_s=0.01)
        ref = bus.ref(SlowToStop, "k")
        await ref.ask("before", timeout=5)
        await wait_until(lambda: keyed_stats(bus).passivations == 1)
        await ref.ask("after", timeout=5)
    assert journal == ["before", "flushed", "after", "flushed"]
