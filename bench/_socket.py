"""Socket scenarios: a bare Unix-socket echo (the baseline) and our server's ping.

Both servers run in their own process (on uvloop when installed) and are measured
by the same blocking client loop in this process: send one length-prefixed frame,
read one length-prefixed frame back, time the round trip. The echo returns the
request frame itself; ours decodes it, dispatches ``ping`` and encodes a response,
so the ratio of the two is what our framing and dispatch cost per request.

Run a server alone with ``python -m bench._socket echo|ping SOCKET``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench._harness import Context, Measurement, Scenario, Target

__all__ = ["SCENARIOS"]


def _ping_frame(rid: int = 1) -> bytes:
    from bus import FrameWriter

    return FrameWriter("msgpack").encode({"id": rid, "op": "ping"})


def stop_process(proc: subprocess.Popen[Any], *, timeout: float) -> None:
    """SIGTERM ``proc`` and wait for it; kill it if it outlives ``timeout`` seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for_socket(path: Path, proc: subprocess.Popen[Any], what: str, *, timeout: float) -> None:
    """Return once ``path`` accepts a connection; fail if ``proc`` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(os.fspath(path))
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(0.02)
        finally:
            probe.close()


@contextmanager
def _server(kind: str, ctx: Context) -> Iterator[Path]:
    path = ctx.scratch(f"sock-{kind}") / "s.sock"
    if len(os.fsencode(path)) > 100:  # AF_UNIX paths are limited to about 100 bytes
        path = Path(tempfile.mkdtemp(prefix=f"ab-{kind}-", dir="/tmp")) / "s.sock"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench._socket", kind, os.fspath(path)],
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_for_socket(path, proc, f"the {kind} server", timeout=20)
        yield path
    finally:
        stop_process(proc, timeout=10)
        if path.parent.name.startswith("ab-"):
            shutil.rmtree(path.parent, ignore_errors=True)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = sock.recv(size)
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            raise ConnectionError("the server closed the connection")
        data += more
    return data


def _rtts(path: Path, frame: bytes, count: int, warmup: int) -> list[float]:
    """Sequential round trips of ``frame``; each answer is one length-prefixed frame."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.fspath(path))
    samples: list[float] = []
    clock = time.perf_counter_ns
    try:
        for i in range(warmup + count):
            t0 = clock()
            sock.sendall(frame)
            header = _recv_exact(sock, 4)
            _recv_exact(sock, int.from_bytes(header, "big"))
            if i >= warmup:
                samples.append((clock() - t0) / 1000)
    finally:
        sock.close()
    samples.sort()
    return samples


def _percentile(samples: list[float], q: float) -> float:
    return samples[min(len(samples) - 1, int(q * len(samples)))]


def _rtt_scenario(kind: str, ctx: Context) -> Measurement:
    """The median round trip, as the best of a few rounds.

    Interference from other processes on a shared machine only ever adds latency,
    so the lowest round median is the least noisy estimate; echo and ping are
    measured alike, so their ratio stays fair.
    """
    frame = _ping_frame()
    rounds = 5
    count = ctx.scale(4_000, 600)
    medians: list[float] = []
    p99s: list[float] = []
    with _server(kind, ctx) as path:
        for i in range(rounds):
            samples = _rtts(path, frame, count, warmup=count // 10)
            medians.append(round(_percentile(samples, 0.50), 2))
            p99s.append(round(_percentile(samples, 0.99), 2))
            ctx.progress((i + 1) / rounds)
    best = medians.index(min(medians))
    return Measurement(
        medians[best],
        "us",
        {
            "p99_us": p99s[best],
            "round_medians_us": medians,
            "frame_bytes": len(frame),
            "round_trips": rounds * count,
        },
    )


def peer_socket_echo(ctx: Context) -> Measurement:
    return _rtt_scenario("echo", ctx)


def server_ping_rtt(ctx: Context) -> Measurement:
    return _rtt_scenario("ping", ctx)


def server_ping_pipelined(ctx: Context) -> Measurement:
    """Pings pipelined on one connection, a window in flight; answers per second."""
    from bus import FrameReader

    window = 256
    total = ctx.scale(400_000, 40_000)
    blob = b"".join(_ping_frame(i) for i in range(window))
    with _server("ping", ctx) as path:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(os.fspath(path))
        reader = FrameReader(1 << 20, "msgpack")
        try:
            start = time.perf_counter()
            sent = answered = 0
            for _ in range(2):
                sock.sendall(blob)
                sent += window
            while answered < total:
                reader.feed(sock.recv(1 << 18))
                got = len(reader.frames())
                answered += got
                # Keep two windows in flight: a fresh one for each one answered.
                while sent < total and sent - answered <= window:
                    sock.sendall(blob)
                    sent += window
            elapsed = time.perf_counter() - start
        finally:
            sock.close()
    return Measurement(round(answered / elapsed), "frames/s", {"window": window})


SCENARIOS: list[Scenario] = [
    Scenario(
        "peer.socket_echo.rtt_p50_us",
        peer_socket_echo,
        baseline=True,
        doc="A bare Unix-socket echo server (asyncio protocol) bouncing a ping frame; "
        "median round trip from a blocking client.",
    ),
    Scenario(
        "server.ping.rtt_p50_us",
        server_ping_rtt,
        # Ping is strictly less work than an acknowledged append, whose target is
        # 3 x the echo: a ping over that would leave the append no headroom.
        target=Target("peer.socket_echo.rtt_p50_us", 3.0, "lower"),
        doc="The same client loop against our server answering ping: decoding, "
        "dispatch and encoding over the bare echo.",
    ),
    Scenario(
        "server.ping.pipelined",
        server_ping_pipelined,
        doc="Pings pipelined on one connection, two windows of 256 in flight: "
        "every complete frame of a read is handled, answers written together.",
    ),
]


# ---- the server processes ------------------------------------------------------


class _Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


async def _serve_echo(path: str) -> None:
    import anyio

    loop = asyncio.get_running_loop()
    server = await loop.create_unix_server(_Echo, path)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            break
    server.close()
    os.unlink(path)


async def _serve_ping(path: str) -> None:
    from bus import serve_unix

    async with serve_unix(path, {}) as server:
        await server.wait_for_signal()


def main(argv: list[str]) -> int:
    from bus import run

    kind, path = argv
    run(_serve_echo if kind == "echo" else _serve_ping, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
