"""The runtime tour: keyed actors, backpressure, supervision, topics and a clean stop.

Everything here is real: real actors on the real runtime. The only invented thing
is the workload (deposits to accounts), chosen so the result can be checked.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

import anyio

from bus import Actor, Bus, RestartPolicy, open_bus
from contracts import BusConfig

from ._progress import Progress

__all__ = ["RuntimeTour", "runtime_tour"]

_MILESTONES = "accounts.milestones"


class _Account(Actor):
    """One account per key: the balance only this actor touches."""

    def __init__(self, bus: Bus, key: int) -> None:
        self.bus = bus
        self.key = key
        self.balance = 0

    def receive(self, message: Any) -> Any:
        if message == "balance":
            return self.balance
        self.balance += message
        if self.balance % 50 == 0:
            self.bus.publish(_MILESTONES, (self.key, self.balance))
        return None


class _Flaky(Actor):
    """Crashes on the message ``"boom"`` to show a supervised restart."""

    def __init__(self) -> None:
        self.seen = 0

    async def receive(self, message: Any) -> Any:
        if message == "boom":
            raise RuntimeError("simulated crash")
        self.seen += 1
        return self.seen


class RuntimeTour:
    """Figures the tour measured, for the summary."""

    def __init__(self) -> None:
        self.messages = 0
        self.seconds = 0.0
        self.accounts = 0
        self.total_ok = False
        self.milestones = 0
        self.passivated = 0
        self.restarts = 0
        self.dead_letters = 0
        self.p50_us = 0.0
        self.p99_us = 0.0


async def runtime_tour(
    out: TextIO = sys.stdout, *, accounts: int = 2_000, messages: int = 200_000
) -> RuntimeTour:
    """Drive the runtime and report what happened.

    Args:
        out: Where progress goes.
        accounts: How many keyed account actors to spread deposits over.
        messages: How many deposits to send.

    Returns:
        The measured figures.
    """
    tour = RuntimeTour()
    tour.accounts = accounts
    config = BusConfig(mailbox_size=256, keyed_idle_s=0.2, max_live_keyed=accounts)
    progress = Progress(out, 3)
    async with open_bus(config) as bus:
        bus.register(_Account, lambda key: _Account(bus, key))
        flaky = bus.spawn(_Flaky, name="flaky", restart=RestartPolicy(max_restarts=3))
        milestones = bus.topic(_MILESTONES).subscribe(max_buffer=100_000, overflow="drop_oldest")

        progress.start(0, "deposits from 8 producers")
        producers = 8
        per_producer = messages // producers
        sent = 0

        async def produce(offset: int) -> None:
            nonlocal sent
            for i in range(per_producer):
                await bus.ref(_Account, (offset + i * producers) % accounts).tell(1)
                if i % 5_000 == 0:
                    sent += 5_000
                    progress.update(sent / messages)

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for p in range(producers):
                tg.start_soon(produce, p)
        balances = [await bus.ref(_Account, k).ask("balance", timeout=10) for k in range(accounts)]
        tour.seconds = time.perf_counter() - start
        tour.messages = per_producer * producers
        tour.total_ok = sum(balances) == tour.messages

        progress.start(1, "a crash and a supervised restart")
        await flaky.tell("boom")
        seen = await flaky.ask("after the crash", timeout=10)
        assert seen == 1, "a restarted actor starts from fresh state"

        progress.start(2, "idle accounts passivate")
        await anyio.sleep(0.5)
        stats = bus.statistics()
        account_stats = next(a for a in stats.actors if a.name == "_Account")
        tour.passivated = account_stats.passivations
        tour.p50_us = account_stats.latency_p50_us
        tour.p99_us = account_stats.latency_p99_us
        tour.restarts = next(a for a in stats.actors if a.name == "flaky").restarts
        while True:
            try:
                milestones.get_nowait()
                tour.milestones += 1
            except LookupError:
                break
        progress.finish()
    tour.dead_letters = bus.dead_letters
    return tour
