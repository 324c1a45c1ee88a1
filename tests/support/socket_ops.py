"""Test ops for the socket server, and a server process that answers them.

In-process tests build the table with :func:`make_handlers`; process tests run
``python tests/support/socket_ops.py SOCKET [CONFIG_JSON]``, which serves the same ops
until SIGTERM or SIGINT, then exits 0 after a graceful shutdown.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import msgspec

from bus import (
    ConnectionBroken,
    Handler,
    Request,
    Result,
    SyncClient,
    Topic,
    open_bus,
    run,
    serve_unix,
)
from contracts import ActorbusError, Overloaded, ServerConfig

#: A value no response, error or log line may ever contain.
SECRET = "hunter2-not-for-logs"


class Echo(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, tag_field="op"):
    id: Any = None
    value: Any = None


class EchoRequest(Echo, frozen=True, tag="echo"):
    pass


class AddRequest(Echo, frozen=True, tag="add"):
    a: int
    b: int


class SlowRequest(Echo, frozen=True, tag="slow"):
    seconds: float = 0.05


class BlobRequest(Echo, frozen=True, tag="blob"):
    size: int


class StreamRequest(Echo, frozen=True, tag="stream"):
    count: int = 3


def make_handlers(
    topic: Topic | None = None, gates: list[asyncio.Future[Any]] | None = None
) -> dict[str, Handler]:
    """The test ops; ``follow`` needs a topic, ``gate`` a list the test resolves."""

    def echo(request: Request) -> Any:
        return request.decode(EchoRequest).value

    def add(request: Request) -> int:
        req = request.decode(AddRequest)
        return req.a + req.b

    async def slow(request: Request) -> Any:
        req = request.decode(SlowRequest)
        await anyio.sleep(req.seconds)
        return req.value

    def fail(request: Request) -> Any:
        raise RuntimeError(f"handler broke while holding {SECRET}")

    def busy(request: Request) -> Any:
        raise Overloaded("the test op is always full")

    def created(request: Request) -> Result:
        return Result({"created": True}, 201)

    async def blob(request: Request) -> str:
        # A small request with a large answer, given later (like ``live.read``).
        size = request.decode(BlobRequest).size
        await anyio.sleep(0)
        return "x" * size

    async def stream(request: Request) -> AsyncIterator[int]:
        count = request.decode(StreamRequest).count
        for i in range(count):
            yield i

    def follow(request: Request) -> Any:
        assert topic is not None
        return topic.subscribe(max_buffer=64)

    def gate(request: Request) -> asyncio.Future[Any]:
        assert gates is not None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        gates.append(fut)
        return fut

    handlers: dict[str, Handler] = {
        "echo": echo,
        "add": add,
        "slow": slow,
        "fail": fail,
        "busy": busy,
        "created": created,
        "stream": stream,
        "blob": blob,
    }
    if topic is not None:
        handlers["follow"] = follow
    if gates is not None:
        handlers["gate"] = gate
    return handlers


OPS_SCRIPT = Path(__file__)


def short_dir() -> Path:
    """A fresh directory with a short path (AF_UNIX paths are limited to about 100 bytes)."""
    return Path(tempfile.mkdtemp(prefix="ab-", dir="/tmp"))


def start_server(path: Path, **config: Any) -> subprocess.Popen[bytes]:
    """Start this module as a server process on ``path``; return once it answers ping."""
    args = [sys.executable, os.fspath(OPS_SCRIPT), os.fspath(path)]
    if config:
        args.append(msgspec.json.encode(config).decode())
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            with SyncClient.connect(path, timeout=5) as client:
                client.request("ping")
            return proc
        except ConnectionBroken:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the test server did not start") from None
            time.sleep(0.02)


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM the server process if it runs; return its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def _serve(path: str, config: ServerConfig) -> None:
    async with open_bus() as bus:
        topic = bus.topic("test")
        async with serve_unix(path, make_handlers(topic), config, bus=bus) as server:
            await server.wait_for_signal()


def main(argv: list[str]) -> int:
    path = argv[0]
    config = msgspec.json.decode(argv[1], type=ServerConfig) if len(argv) > 1 else ServerConfig()
    failed = False
    try:
        run(_serve, path, config)
    except* ActorbusError as group:
        # open_bus's task group wraps what its body raised: report each error in one line.
        for exc in group.exceptions:
            print(f"socket_ops: {exc}", file=sys.stderr)
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
