"""The cell: draining, supervision with restart backoff, group commit, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar

import anyio
import pytest

from bus import Actor, ActorStopped, Later, RestartPolicy, open_bus
from bus._runtime.dispatch import THROUGHPUT
from contracts import BusConfig, ShuttingDown

pytestmark = pytest.mark.anyio

QUICK = BusConfig(shutdown_deadline_s=0.2)


async def wait_until(predicate: Any, limit: float = 5.0) -> None:
    with anyio.fail_after(limit):
        while not predicate():
            await anyio.sleep(0.001)


class Journal:
    """What a family of actor instances did, kept outside them so restarts keep it."""

    def __init__(self) -> None:
        self.built = 0
        self.started: list[int] = []
        self.start_times: list[float] = []
        self.stopped: list[int] = []
        self.handled: list[tuple[int, Any]] = []


class Crashy(Actor):
    """Raises on ``"crash"``; records its lifecycle in the shared journal."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        journal.built += 1
        self.serial = journal.built

    async def on_start(self) -> None:
        self.journal.started.append(self.serial)
        self.journal.start_times.append(asyncio.get_running_loop().time())

    async def on_stop(self) -> None:
        self.journal.stopped.append(self.serial)

    async def receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crashed on purpose")
        self.journal.handled.append((self.serial, message))
        return message


async def test_a_crash_during_tell_restarts_a_fresh_instance_after_a_backoff() -> None:
    journal = Journal()
    policy = RestartPolicy(max_restarts=3, window_s=60, backoff_s=0.02, max_backoff_s=1)
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Crashy(journal), name="crashy", restart=policy)
        await ref.tell("before")
        for _ in range(3):
            await ref.tell("crash")
        await ref.tell("after")
        assert await ref.ask("ask", timeout=5) == "ask"
        stats = bus.statistics().actors[0]
    first, *restarted = journal.started
    assert len(restarted) == 3, "each crash starts a fresh instance"
    assert len(set(journal.started)) == 4
    assert journal.stopped[:3] == journal.started[:3], "the crashed instance is stopped first"
    assert journal.handled[0] == (first, "before")
    assert journal.handled[1:] == [(restarted[-1], "after"), (restarted[-1], "ask")]
    gaps = [b - a for a, b in zip(journal.start_times, journal.start_times[1:], strict=False)]
    # Backoff doubles: at least 0.02, 0.04 and 0.08 s between the starts.
    for gap, backoff in zip(gaps, (0.02, 0.04, 0.08), strict=True):
        assert gap >= backoff * 0.9
    assert stats.restarts == 3
    assert stats.failures == 3
    assert stats.live == 1


async def test_a_crash_loop_past_the_budget_stops_the_actor_and_dead_letters_its_mail() -> None:
    journal = Journal()
    policy = RestartPolicy(max_restarts=2, window_s=60, backoff_s=0.001)
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Crashy(journal), name="crashy", restart=policy)
        for message in ("crash", "crash", "crash", "queued-1", "queued-2"):
            ref.try_tell(message)
        queued_ask = ref.try_ask("queued-ask", timeout=5)
        with anyio.fail_after(5), pytest.raises(ActorStopped):
            await queued_ask
        # Later mail: counted dead letters, asks answered at once.
        await ref.tell("later")
        ref.try_tell("later-too")
        with pytest.raises(ActorStopped):
            await ref.ask("later-ask", timeout=5)
        stats = bus.statistics()
    actor = stats.actors[0]
    assert journal.handled == []
    assert actor.live == 0
    assert actor.restarts == 2
    assert actor.failures == 3
    assert stats.dead_letters.count == 6
    assert actor.messages_in == actor.messages_out + stats.dead_letters.count
    assert journal.stopped == journal.started, "the last instance got on_stop too"
    assert all("actor stopped" in entry for entry in stats.dead_letters.recent)


async def test_crashes_further_apart_than_the_window_never_spend_the_budget() -> None:
    journal = Journal()
    policy = RestartPolicy(max_restarts=1, window_s=0.03, backoff_s=0.001)
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Crashy(journal), name="crashy", restart=policy)
        for _ in range(3):
            await ref.tell("crash")
            await anyio.sleep(0.05)
        assert await ref.ask("alive", timeout=5) == "alive"
        assert bus.statistics().actors[0].restarts == 3


class FailsToStart(Actor):
    starts: ClassVar[int] = 0

    async def on_start(self) -> None:
        FailsToStart.starts += 1
        raise OSError("cannot start")


async def test_an_actor_that_never_starts_is_stopped_and_its_asks_answered() -> None:
    FailsToStart.starts = 0
    policy = RestartPolicy(max_restarts=2, window_s=60, backoff_s=0.001)
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(FailsToStart, name="never", restart=policy)
        with anyio.fail_after(5), pytest.raises(ActorStopped):
            await ref.ask("hello", timeout=5)
        stats = bus.statistics().actors[0]
    assert FailsToStart.starts == 3
    assert stats.failures == 3
    assert stats.live == 0


class CannotBuild(Actor):
    def __init__(self) -> None:
        raise ValueError("the factory failed")


async def test_a_factory_that_raises_counts_as_a_crash_and_leaves_nobody_hanging() -> None:
    policy = RestartPolicy(max_restarts=1, window_s=60, backoff_s=0.001)
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(CannotBuild, name="unbuildable", restart=policy)
        with anyio.fail_after(2), pytest.raises(ActorStopped):
            await ref.ask("hello", timeout=1)
        stats = bus.statistics().actors[0]
    assert stats.failures == 2
    assert stats.live == 0


class Recorder(Actor):
    def __init__(self, seen: list[Any]) -> None:
        self.seen = seen

    async def receive(self, message: Any) -> Any:
        self.seen.append(message)
        return message


async def test_a_long_mailbox_yields_to_other_tasks_between_runs_of_messages() -> None:
    seen: list[Any] = []
    observed: list[int] = []
    total = THROUGHPUT * 3
    async with open_bus(BusConfig(mailbox_size=total, shutdown_deadline_s=0.2)) as bus:
        ref = bus.spawn(lambda: Recorder(seen), name="recorder")
        for n in range(total):
            ref.try_tell(n)
        asyncio.get_running_loop().call_soon(lambda: observed.append(len(seen)))
        await wait_until(lambda: len(seen) == total)
    assert observed and 0 < observed[0] < total
    assert seen == list(range(total))


class Batcher(Actor):
    """Group commit: answers each message, or an exception for ``"bad"``."""

    batch_size: ClassVar[int] = 4

    def __init__(self, batches: list[list[Any]]) -> None:
        self.batches = batches

    async def receive_batch(self, messages: Sequence[Any]) -> Sequence[Any]:
        self.batches.append(list(messages))
        if "explode" in messages:
            raise RuntimeError("the whole batch failed")
        if "short" in messages:
            return []
        return [ValueError(f"bad {m}") if m == "bad" else m * 10 for m in messages]


async def test_a_batch_actor_gets_what_is_queued_in_batches_of_its_size() -> None:
    batches: list[list[Any]] = []
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Batcher(batches), name="batcher")
        pending = [ref.try_ask(n, timeout=5) for n in range(10)]
        replies = [await p for p in pending]
        stats = bus.statistics().actors[0]
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert replies == [n * 10 for n in range(10)]
    assert stats.messages_out == 10


async def test_a_per_message_exception_in_a_batch_reaches_only_its_asker() -> None:
    batches: list[list[Any]] = []
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Batcher(batches), name="batcher")
        first, bad, last = (ref.try_ask(m, timeout=5) for m in (1, "bad", 3))
        assert await first == 10
        with pytest.raises(ValueError, match="bad bad"):
            await bad
        assert await last == 30
        stats = bus.statistics().actors[0]
    assert batches == [[1, "bad", 3]]
    assert stats.failures == 1
    assert stats.restarts == 0


async def test_a_raising_receive_batch_fails_every_message_of_the_batch() -> None:
    batches: list[list[Any]] = []
    policy = RestartPolicy(max_restarts=3, window_s=60, backoff_s=0.001)
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Batcher(batches), name="batcher", restart=policy)
        asks = [ref.try_ask(1, timeout=5), ref.try_ask("explode", timeout=5)]
        ref.try_tell(2)  # a tell in the failed batch: the actor crashed
        for pending in asks:
            with pytest.raises(RuntimeError, match="the whole batch failed"):
                await pending
        assert await ref.ask(5, timeout=5) == 50
        stats = bus.statistics().actors[0]
    assert batches == [[1, "explode", 2], [5]]
    assert stats.failures == 1
    assert stats.restarts == 1


async def test_a_batch_answer_of_the_wrong_length_fails_the_batch() -> None:
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Batcher([]), name="batcher")
        with pytest.raises(RuntimeError, match="answered 0 of 1 messages"):
            await ref.ask("short", timeout=5)


class Holder(Actor):
    """Holds ``"hold"`` until released; answers everything else at once."""

    def __init__(self, release: anyio.Event) -> None:
        self.release = release

    async def receive(self, message: Any) -> Any:
        if message == "hold":
            await self.release.wait()
        return message


async def test_an_asker_cancelled_while_waiting_does_not_break_the_actor() -> None:
    release = anyio.Event()
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Holder(release), name="holder")
        with anyio.move_on_after(0.02) as scope:
            await ref.ask("hold", timeout=None)
        assert scope.cancelled_caught
        with anyio.move_on_after(0.02) as queued_scope:
            await ref.ask("queued behind hold", timeout=5)
        assert queued_scope.cancelled_caught
        release.set()
        assert await ref.ask("next", timeout=5) == "next"
        stats = bus.statistics().actors[0]
    assert stats.messages_out == 3
    assert stats.failures == 0


class Canceller(Actor):
    """On ``"cancel"`` cancels a task: in the same loop step that freed a slot."""

    def __init__(self, release: anyio.Event, victims: list[asyncio.Task[Any]]) -> None:
        self.release = release
        self.victims = victims

    async def receive(self, message: Any) -> Any:
        if message == "hold":
            await self.release.wait()
        elif message == "cancel":
            self.victims[0].cancel()
        return message


async def test_a_producer_cancelled_after_being_woken_passes_the_room_on() -> None:
    release = anyio.Event()
    victims: list[asyncio.Task[Any]] = []
    seen: list[Any] = []
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Canceller(release, victims), name="canceller", mailbox_size=1)
        await ref.tell("hold")
        await wait_until(lambda: bus.statistics().actors[0].mailbox_depth == 0)
        await ref.tell("cancel")  # the mailbox is full
        first = asyncio.ensure_future(ref.tell("first"))
        victims.append(first)
        await anyio.sleep(0.01)
        second = asyncio.ensure_future(ref.tell("second"))
        await anyio.sleep(0.01)
        # Popping "cancel" wakes the first producer, whose task the handler then
        # cancels before it can use the room: the second must get it instead.
        release.set()
        with anyio.fail_after(5):
            await second
        with pytest.raises(asyncio.CancelledError):
            await first
        seen.append(await ref.ask("after", timeout=5))
    assert seen == ["after"]
    assert bus.statistics().actors[0].messages_out == 4


class CancelledInside(Actor):
    """Awaits a future someone else cancelled: a CancelledError not aimed at the actor."""

    async def receive(self, message: Any) -> Any:
        if message == "awaits a cancelled future":
            doomed = asyncio.get_running_loop().create_future()
            doomed.cancel()
            await doomed
        return message


async def test_a_cancelled_error_of_the_handlers_own_fails_only_that_message() -> None:
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(CancelledInside, name="inside")
        failing = ref.try_ask("awaits a cancelled future", timeout=5)
        queued = ref.try_ask("queued behind it", timeout=5)
        with pytest.raises(RuntimeError, match="the handler raised CancelledError"):
            await failing
        assert await queued == "queued behind it"
        stats = bus.statistics().actors[0]
    assert stats.failures == 1
    assert stats.messages_out == 2


class Batching(Actor):
    batch_size: ClassVar[int] = 8

    def __init__(self, release: anyio.Event) -> None:
        self.release = release

    async def receive_batch(self, messages: Sequence[Any]) -> Sequence[Any]:
        await self.release.wait()
        return list(messages)


async def test_a_batch_in_flight_at_the_deadline_answers_its_asks() -> None:
    pending: list[Any] = []
    async with open_bus(BusConfig(shutdown_deadline_s=0.05)) as bus:
        ref = bus.spawn(lambda: Batching(anyio.Event()), name="batching")
        pending = [ref.try_ask(n, timeout=5) for n in range(3)]
    for ask in pending:
        with anyio.fail_after(1), pytest.raises(ShuttingDown, match="mid-message"):
            await ask


def test_the_restart_policy_keeps_its_bounds() -> None:
    policy = RestartPolicy(max_restarts=5, window_s=2.0, backoff_s=0.1, max_backoff_s=0.5)
    assert (policy.max_restarts, policy.window_s, policy.backoff_s, policy.max_backoff_s) == (
        5,
        2.0,
        0.1,
        0.5,
    )
    default = RestartPolicy()
    assert default.max_restarts == 3
    assert default.window_s == 10.0


class Counter(Actor):
    """A plain-method ``receive``: called directly, no coroutine per message."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        journal.built += 1
        self.serial = journal.built
        self.total = 0

    def receive(self, message: Any) -> Any:  # type: ignore[override]
        if message == "crash":
            raise RuntimeError("crashed on purpose")
        if message == "cancelled":
            raise asyncio.CancelledError  # as if it had waited on a cancelled future
        self.total += message
        self.journal.handled.append((self.serial, message))
        return self.total


async def test_a_plain_method_receive_is_called_directly_and_supervised_alike() -> None:
    journal = Journal()
    policy = RestartPolicy(max_restarts=3, window_s=60, backoff_s=0.001)
    assert Counter.direct and not Crashy.direct
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Counter(journal), name="counter", restart=policy)
        for n in range(1, 41):
            await ref.tell(n)
        assert await ref.ask(0, timeout=5) == sum(range(41))
        with pytest.raises(RuntimeError, match="on purpose"):
            await ref.ask("crash", timeout=5)
        await ref.tell("crash")  # a crash during a tell: a fresh instance
        assert await ref.ask(5, timeout=5) == 5
        stats = bus.statistics().actors[0]
    assert [serial for serial, _ in journal.handled] == [1] * 41 + [2]
    assert (stats.failures, stats.restarts, stats.messages_out) == (2, 1, 44)
    assert stats.latency_max_us > 0


async def test_a_plain_method_receive_raising_cancelled_error_fails_only_that_message() -> None:
    journal = Journal()
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Counter(journal), name="counter")
        cancelled = ref.try_ask("cancelled", timeout=5)
        queued = ref.try_ask(7, timeout=5)
        with pytest.raises(RuntimeError, match="the handler raised CancelledError"):
            await cancelled
        assert await queued == 7
        assert bus.statistics().actors[0].failures == 1


class Committer(Actor):
    """A direct batch actor: a plain ``receive_batch``, drained without a task.

    ``"later"`` in a batch answers the whole batch with a future the test completes.
    """

    batch_size: ClassVar[int] = 4

    def __init__(self, batches: list[list[Any]], pending: list[asyncio.Future[Any]]) -> None:
        self.batches = batches
        self.pending = pending

    def receive_batch(self, messages: Sequence[Any]) -> Any:  # type: ignore[override]
        self.batches.append(list(messages))
        if "explode" in messages:
            raise RuntimeError("the whole batch failed")
        if "later" in messages:
            answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.pending.append(answer)
            return answer
        return [ValueError(f"bad {m}") if m == "bad" else m for m in messages]


async def test_a_direct_batch_actor_answers_batches_without_a_task() -> None:
    batches: list[list[Any]] = []
    assert Committer.direct_batch and not Batcher.direct_batch
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Committer(batches, []), name="committer")
        first = [ref.try_ask(n, timeout=5) for n in (1, "bad", 3)]
        assert await first[0] == 1
        with pytest.raises(ValueError, match="bad bad"):
            await first[1]
        assert await first[2] == 3
        replies = [ref.try_ask(n, timeout=5) for n in range(10)]
        assert [await r for r in replies] == list(range(10))
        stats = bus.statistics().actors[0]
    assert batches == [[1, "bad", 3], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert (stats.messages_out, stats.failures) == (13, 1)


async def test_a_batch_answered_later_holds_the_actor_until_its_future_completes() -> None:
    batches: list[list[Any]] = []
    pending: list[asyncio.Future[Any]] = []
    async with open_bus(QUICK) as bus:
        bus.register(Committer, lambda key: Committer(batches, pending), idle_s=0.005)
        ref = bus.ref(Committer, "k")
        await ref.ask("warm up", timeout=5)  # started: direct from now on
        in_flight = [ref.try_ask(m, timeout=5) for m in ("later", "x")]
        await anyio.sleep(0.01)  # the actor took that batch
        queued = [ref.try_ask(m, timeout=5) for m in ("y", "z")]
        await anyio.sleep(0.05)  # far past the idle timeout
        stats = next(a for a in bus.statistics().actors if a.keyed)
        assert stats.passivations == 0, "passivated with a batch in flight"
        assert batches[-1] == ["later", "x"]
        assert stats.mailbox_depth == 2
        pending[0].set_result(["L", "X"])
        assert [await a for a in in_flight] == ["L", "X"]
        assert [await a for a in queued] == ["y", "z"]
    assert batches == [["warm up"], ["later", "x"], ["y", "z"]]


def _answering_later(kind: str, pending: list[Any]) -> tuple[Any, str, str]:
    """An actor answering batches with a future or a Later, the message that makes it
    answer later, and one it answers at once."""
    if kind == "future":
        return (lambda: Committer([], pending)), "later", "warm up"
    return (lambda: Deferring([], pending)), "x", "now"


def _fail_later(answer: Any, error: BaseException) -> None:
    if isinstance(answer, Later):
        answer.fail(error)
    else:
        answer.set_exception(error)


def _answer_later(answer: Any, replies: Any) -> None:
    if isinstance(answer, Later):
        answer.resolve(replies)
    else:
        answer.set_result(replies)


@pytest.mark.parametrize("kind", ["future", "Later"])
async def test_a_batch_answered_later_that_fails_or_answers_badly_fails_only_its_asks(
    kind: str,
) -> None:
    pending: list[Any] = []
    factory, message, warm_up = _answering_later(kind, pending)
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(factory, name="answering-later")
        await ref.ask(warm_up, timeout=5)
        failing = ref.try_ask(message, timeout=5)
        await anyio.sleep(0.01)
        _fail_later(pending[0], OSError("disk gone"))
        with pytest.raises(OSError, match="disk gone"):
            await failing
        short = ref.try_ask(message, timeout=5)
        await anyio.sleep(0.01)
        _answer_later(pending[1], [])
        with pytest.raises(RuntimeError, match="answered 0 of 1"):
            await short
        not_a_list = ref.try_ask(message, timeout=5)
        await anyio.sleep(0.01)
        _answer_later(pending[2], None)
        with pytest.raises(TypeError):
            await not_a_list
        assert await ref.ask(warm_up, timeout=5) in (warm_up, warm_up.upper())
        assert bus.statistics().actors[0].failures == 3


class Deferring(Actor):
    """A direct batch actor that answers with a :class:`Later` the test completes.

    ``"now"`` in a batch resolves its Later within the call.
    """

    batch_size: ClassVar[int] = 8

    def __init__(self, batches: list[list[Any]], pending: list[Later]) -> None:
        self.batches = batches
        self.pending = pending

    def receive_batch(self, messages: Sequence[Any]) -> Later:  # type: ignore[override]
        self.batches.append(list(messages))
        answer = Later()
        if "now" in messages:
            answer.resolve([m.upper() for m in messages])
        else:
            self.pending.append(answer)
        return answer


async def test_a_later_holds_the_actor_and_its_resolve_answers_at_once() -> None:
    batches: list[list[Any]] = []
    pending: list[Later] = []
    async with open_bus(QUICK) as bus:
        bus.register(Deferring, lambda key: Deferring(batches, pending), idle_s=0.005)
        ref = bus.ref(Deferring, "k")
        assert await ref.ask("now", timeout=5) == "NOW"  # started: direct from now on
        in_flight = [ref.try_ask(m, timeout=5) for m in ("a", "b")]
        await anyio.sleep(0.01)
        queued = [ref.try_ask(m, timeout=5) for m in ("c", "now")]
        await anyio.sleep(0.05)  # far past the idle timeout
        stats = next(a for a in bus.statistics().actors if a.keyed)
        assert stats.passivations == 0, "passivated with a batch in flight"
        assert stats.mailbox_depth == 2
        assert len(pending) == 1 and not pending[0].done()
        pending[0].resolve(["A", "B"])
        # The askers' futures are set within resolve(), and the queued mail was taken
        # as the next batch in the same call: no pass of the loop in between.
        assert all(a.done() for a in in_flight)
        assert all(a.done() for a in queued)
        assert [a.result() for a in in_flight] == ["A", "B"]
        assert [a.result() for a in queued] == ["C", "NOW"]
        pending[0].resolve(["ignored"])  # a Later completes once
    assert batches == [["now"], ["a", "b"], ["c", "now"]]


async def test_a_direct_batch_that_raises_with_a_tell_in_it_restarts_the_actor() -> None:
    batches: list[list[Any]] = []
    policy = RestartPolicy(max_restarts=3, window_s=60, backoff_s=0.001)
    async with open_bus(QUICK) as bus:
        ref = bus.spawn(lambda: Committer(batches, []), name="committer", restart=policy)
        await ref.ask("warm up", timeout=5)
        asked = ref.try_ask("explode", timeout=5)
        ref.try_tell("told")
        with pytest.raises(RuntimeError, match="the whole batch failed"):
            await asked
        assert await ref.ask("after", timeout=5) == "after"
        stats = bus.statistics().actors[0]
    assert (stats.restarts, stats.failures) == (1, 1)
    assert batches[-1] == ["after"]


@pytest.mark.parametrize("kind", ["future", "Later"])
async def test_a_batch_still_in_flight_at_the_deadline_is_answered_shutting_down(
    kind: str,
) -> None:
    pending: list[Any] = []
    factory, message, warm_up = _answering_later(kind, pending)
    async with open_bus(BusConfig(shutdown_deadline_s=0.05)) as bus:
        ref = bus.spawn(factory, name="answering-later")
        await ref.ask(warm_up, timeout=5)
        in_flight = ref.try_ask(message, timeout=5)
        queued = ref.try_ask("never handled", timeout=5)
    with pytest.raises(ShuttingDown):
        await in_flight
    with pytest.raises(ShuttingDown):
        await queued
    assert pending[0].cancelled() and not pending[0].cancel()
    if kind == "Later":
        pending[0].resolve(["late"])  # after the bus closed: nothing to answer, no error


class Count(Actor):
    """Counts what it handles."""

    def __init__(self) -> None:
        self.handled = 0

    async def receive(self, message: Any) -> int:
        if message == "crash":
            raise RuntimeError("crash")
        self.handled += 1
        return self.handled


async def test_a_cell_that_leaves_open_takes_no_more_mail_into_its_mailbox() -> None:
    """STOPPED, PASSIVATED and CLOSED all shut the mailbox: nobody would drain it."""
    stopped_policy = RestartPolicy(max_restarts=0, window_s=60, backoff_s=0.001)
    async with open_bus(QUICK) as bus:
        # STOPPED: the restart budget spent.
        stopped = bus.spawn(Count, name="stopped", restart=stopped_policy)
        stopped.try_tell("crash")
        cell = stopped._cell
        await wait_until(lambda: cell.state.name == "STOPPED")
        assert cell.mailbox.limit == 0
        stopped.try_tell("after")
        await stopped.tell("after")
        assert not cell.mailbox.queue
        assert bus.statistics().dead_letters.count == 2

        # PASSIVATED: the idle keyed instance retired; mail goes to its successor.
        bus.register(Count, lambda key: Count(), idle_s=0.01)
        keyed = bus.ref(Count, "k")
        assert await keyed.ask("one", timeout=5) == 1
        old = keyed._cell
        await wait_until(lambda: old.state.name == "PASSIVATED")
        assert old.mailbox.limit == 0
        assert await keyed.ask("two", timeout=5) == 1  # a fresh instance
        assert keyed._cell is not old
        assert not old.mailbox.queue

        named = bus.spawn(Count, name="named")
        assert await named.ask("x", timeout=5) == 1
        open_cell = named._cell
    # CLOSED: the bus has closed.
    assert open_cell.state.name == "CLOSED"
    assert open_cell.mailbox.limit == 0
    with pytest.raises(ShuttingDown):
        named.try_tell("late")
    with pytest.raises(ShuttingDown):
        await named.tell("late")
    assert not open_cell.mailbox.queue
