"""Reference floors: what the bare mechanisms cost, with none of actorbus around them.

They have no target. They say how much of a target the machine itself leaves to
our code, measured in the same run as everything else:

- ``floor.acked_bare``: the acknowledged-append workload of ``append.inproc.acked``
  (one session, 64 producers each awaiting its acknowledgement) on the bare
  mechanism the recorder is built on: a future per event, one long-lived IO thread
  that takes every waiting job and returns all the outcomes with one
  ``call_soon_threadsafe``, and the open, flock, write, close per batch. Each event
  is decoded, and nothing more: no actor, no mailbox, no other check, no envelope
  of its own time, no acknowledgement object.
- ``floor.io_hop_rtt_p50_us``: one lone 300-byte append through that IO thread and
  back (hand-over, wake-up, open, flock, write, close, wake-up back), median
  microseconds. An acknowledged socket append pays it on top of a socket round trip
  (``peer.socket_echo.rtt_p50_us``), before anything is parsed or checked.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from contracts import EventHead

from ._baselines import LINE
from ._harness import Context, Measurement, Scenario
from ._recording import PRODUCERS, _events

__all__ = ["SCENARIOS"]

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT


class _BareIO:
    """One long-lived thread: takes every waiting job, posts every outcome in one call."""

    def __init__(self, loop: asyncio.AbstractEventLoop, path: str) -> None:
        self._loop = loop
        self._path = path
        self._cond = threading.Condition()
        self._jobs: list[tuple[bytes, Callable[[], None]] | None] = []
        self._thread = threading.Thread(target=self._run, name="floor-io", daemon=True)
        self._thread.start()

    def submit(self, data: bytes, done: Callable[[], None]) -> None:
        with self._cond:
            self._jobs.append((data, done))
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._jobs.append(None)
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs:
                    self._cond.wait()
                jobs, self._jobs = self._jobs, []
            finished = []
            for job in jobs:
                if job is None:
                    return
                data, done = job
                fd = os.open(self._path, _FLAGS, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                    os.write(fd, data)
                finally:
                    os.close(fd)
                finished.append(done)
            self._loop.call_soon_threadsafe(_run_all, finished)


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()


class _BareWriter:
    """Group commit with no actor: what queued while a write was out is the next batch."""

    def __init__(self, loop: asyncio.AbstractEventLoop, io: _BareIO) -> None:
        self._loop = loop
        self._io = io
        self._queued: list[tuple[bytes, asyncio.Future[None]]] = []
        self._busy = False

    def append(self, raw: bytes) -> asyncio.Future[None]:
        fut = self._loop.create_future()
        self._queued.append((raw, fut))
        if not self._busy:
            self._busy = True
            self._loop.call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        batch, self._queued = self._queued, []
        prefix = b'{"recorded_at":"2026-11-22T09:15:02.137Z","event":'
        data = b"".join([prefix + raw + b"}\n" for raw, _ in batch])
        self._io.submit(data, lambda: self._written(batch))

    def _written(self, batch: list[tuple[bytes, asyncio.Future[None]]]) -> None:
        for _, fut in batch:
            fut.set_result(None)
        if self._queued:
            self._flush()
        else:
            self._busy = False


async def floor_acked_bare(ctx: Context) -> Measurement:
    total = ctx.scale(200_000, 40_000)
    per_producer = total // PRODUCERS
    events = _events(["acked"], 8192)
    decode = msgspec.json.Decoder(EventHead).decode
    loop = asyncio.get_running_loop()
    figures = []
    for _ in range(ctx.scale(3, 2)):
        io = _BareIO(loop, os.fspath(ctx.scratch("floor-acked") / "acked.jsonl"))
        writer = _BareWriter(loop, io)

        async def producer(offset: int, writer: _BareWriter = writer) -> None:
            count = len(events)
            for i in range(per_producer):
                raw = events[(offset + i * PRODUCERS) % count]
                decode(raw)
                await writer.append(raw)

        start = time.perf_counter()
        await asyncio.gather(*(producer(p) for p in range(PRODUCERS)))
        figures.append(per_producer * PRODUCERS / (time.perf_counter() - start))
        io.close()
    return Measurement(
        max(figures), "events/s", {"producers": PRODUCERS, "runs": [round(f) for f in figures]}
    )


async def floor_io_hop_rtt(ctx: Context) -> Measurement:
    loop = asyncio.get_running_loop()
    io = _BareIO(loop, os.fspath(ctx.scratch("floor-hop") / "hop.jsonl"))
    samples: list[float] = []
    try:
        for i in range(ctx.scale(5000, 1000)):
            fut: asyncio.Future[Any] = loop.create_future()
            start = time.perf_counter()
            io.submit(LINE, lambda f=fut: f.set_result(None))  # type: ignore[misc]
            await fut
            if i >= 100:  # past the warm-up
                samples.append(time.perf_counter() - start)
            await asyncio.sleep(0)
    finally:
        io.close()
    samples.sort()
    return Measurement(
        round(samples[len(samples) // 2] * 1e6, 2),
        "us",
        {"p99_us": round(samples[int(len(samples) * 0.99)] * 1e6, 1), "appends": len(samples)},
    )


SCENARIOS = [
    Scenario(
        "floor.acked_bare",
        floor_acked_bare,
        baseline=True,
        doc="The acked workload on the bare mechanism: futures, one IO thread, decoding "
        "only; no actor, no checks, no acknowledgement objects.",
    ),
    Scenario(
        "floor.io_hop_rtt_p50_us",
        floor_io_hop_rtt,
        baseline=True,
        doc="One lone 300-byte append through a bare IO thread and back, median.",
    ),
]
