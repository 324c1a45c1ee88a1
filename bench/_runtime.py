"""Runtime scenarios: the syscall floor, the naive recorder, Pykka, and our actors."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from typing import Any

from bus import Actor, ActorRef, open_bus

from ._baselines import floor_write_batched, seed_per_event
from ._harness import Context, Measurement, Scenario, Skip, Target, best_of

__all__ = ["SCENARIOS"]


def _floor(ctx: Context) -> Measurement:
    lines = ctx.scale(2_000_000, 400_000)
    path = ctx.scratch("floor") / "floor.jsonl"
    best, runs = best_of(3, lambda: floor_write_batched(path, lines))
    return Measurement(best, "lines/s", {"runs": runs, "lines_per_call": 64})


def _seed(ctx: Context) -> Measurement:
    events = ctx.scale(200_000, 40_000)
    path = ctx.scratch("seed") / "seed.jsonl"
    best, runs = best_of(3, lambda: seed_per_event([path], events))
    return Measurement(best, "events/s", {"runs": runs})


class _Echo(Actor):
    """The benchmark's actor: counts and answers with what it got.

    Its handler is a plain method, like Pykka's ``on_receive``: the same workload.
    """

    def __init__(self) -> None:
        self.count = 0

    def receive(self, message: Any) -> Any:
        self.count += 1
        return message


class _AsyncEcho(Actor):
    """The same actor with a coroutine handler, reported beside the main figure."""

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: Any) -> Any:
        self.count += 1
        return message


async def _tells(ref: ActorRef, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await ref.tell(i)
    await ref.ask("flush")
    return n / (time.perf_counter() - start)


async def _asks(ref: ActorRef, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await ref.ask(i)
    return n / (time.perf_counter() - start)


def _pykka_refs() -> Any:
    try:
        import pykka
    except ImportError:
        raise Skip("Pykka is not installed: pip install 'actorbus[bench]'") from None

    class Echo(pykka.ThreadingActor):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.count = 0

        def on_receive(self, message: Any) -> Any:
            self.count += 1
            return message

    return Echo.start()


def _pykka_tell(ctx: Context) -> Measurement:
    n = ctx.scale(400_000, 100_000)
    ref = _pykka_refs()
    try:

        def once() -> float:
            start = time.perf_counter()
            for i in range(n):
                ref.tell(i)
            ref.ask("flush")
            return n / (time.perf_counter() - start)

        best, runs = best_of(3, once)
    finally:
        ref.stop()
    return Measurement(best, "msgs/s", {"runs": runs})


def _pykka_ask(ctx: Context) -> Measurement:
    n = ctx.scale(100_000, 25_000)
    ref = _pykka_refs()
    try:

        def once() -> float:
            start = time.perf_counter()
            for i in range(n):
                ref.ask(i)
            return n / (time.perf_counter() - start)

        best, runs = best_of(3, once)
    finally:
        ref.stop()
    return Measurement(best, "round trips/s", {"runs": runs})


async def _bus_tell(ctx: Context) -> Measurement:
    n = ctx.scale(1_000_000, 300_000)
    async with open_bus() as bus:
        ref = bus.spawn(_Echo, name="echo")
        runs = [await _tells(ref, n) for _ in range(3)]
        coro = bus.spawn(_AsyncEcho, name="async-echo")
        coro_runs = [await _tells(coro, n) for _ in range(3)]
    return Measurement(
        max(runs),
        "msgs/s",
        {"runs": runs, "mailbox": 1024, "coroutine_handler_msgs_s": max(coro_runs)},
    )


async def _bus_ask(ctx: Context) -> Measurement:
    n = ctx.scale(200_000, 50_000)
    async with open_bus() as bus:
        ref = bus.spawn(_Echo, name="echo")
        runs = [await _asks(ref, n) for _ in range(3)]
        coro = bus.spawn(_AsyncEcho, name="async-echo")
        coro_runs = [await _asks(coro, n) for _ in range(3)]
    return Measurement(
        max(runs),
        "round trips/s",
        {"runs": runs, "coroutine_handler_round_trips_s": max(coro_runs)},
    )


_MEMORY_PROBE = """
import gc, json, os, sys
from bus import Actor, ActorRef, open_bus, run

class Idle(Actor):
    async def receive(self, message):
        return message

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

async def main(count):
    async with open_bus() as bus:
        bus.register(Idle, lambda key: Idle(), idle_s=3600, max_live=count * 2)
        warm = [bus.ref(Idle, ("warm", k)) for k in range(256)]
        for ref in warm:
            await ref.ask(0)
        gc.collect()
        before = rss()
        refs = [bus.ref(Idle, k) for k in range(count)]
        for ref in refs:
            await ref.ask(0)
        del refs
        gc.collect()
        after = rss()
        live = bus.statistics().actors[0].live
        print(json.dumps({"bytes": (after - before) / count, "live": live}))

run(main, int(sys.argv[1]))
"""


def _memory(ctx: Context) -> Measurement:
    count = ctx.scale(50_000, 20_000)
    # A fresh interpreter, so memory freed by earlier scenarios cannot hide growth.
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_PROBE, str(count)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    gc.collect()
    return Measurement(
        figures["bytes"],
        "bytes",
        {"actors": count, "live_after": figures["live"], "measure": "RSS delta per actor"},
    )


SCENARIOS = [
    Scenario(
        "floor.write_batched",
        _floor,
        baseline=True,
        doc="raw os.write of 64 x 300-byte lines per call to an O_APPEND file",
    ),
    Scenario(
        "seed.per_event",
        _seed,
        baseline=True,
        doc="per event: open O_APPEND, flock, write one line, close (synchronous)",
    ),
    Scenario("peer.pykka.tell", _pykka_tell, baseline=True, doc="Pykka echo actor, tells"),
    Scenario("peer.pykka.ask", _pykka_ask, baseline=True, doc="Pykka echo actor, asks"),
    Scenario(
        "bus.tell",
        _bus_tell,
        Target("peer.pykka.tell", 20.0),
        doc="our echo actor (plain-method handler, as Pykka's), awaited tells, one producer",
    ),
    Scenario(
        "bus.ask",
        _bus_ask,
        Target("peer.pykka.ask", 4.0),
        doc="our echo actor (plain-method handler), sequential asks",
    ),
    Scenario(
        "memory.idle_actor_bytes",
        _memory,
        Target(None, 4096.0, "lower"),
        doc="resident bytes per idle live keyed actor",
    ),
]
