"""Helpers for the HTTP tests: a real ``actorbus serve`` with HTTP, httpx clients, raw exchanges.

Raw responses are read with httptools' response parser (llhttp), never by hand.
"""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httptools
import httpx

from support.service import REPO, short_root, socket_of, start_serve, stop

REPO_DOCS = REPO / "docs"


@dataclass
class Served:
    """A running service: its root, socket, TCP address (if any) and process."""

    root: Path
    proc: subprocess.Popen[bytes]
    tcp: str | None = None
    stderr: list[bytes] = field(default_factory=list)

    @property
    def sock(self) -> Path:
        return socket_of(self.root)

    def uds(self, **kwargs: object) -> httpx.Client:
        """An httpx client over the Unix socket."""
        transport = httpx.HTTPTransport(uds=os.fspath(self.sock))
        return httpx.Client(transport=transport, base_url="http://localhost", timeout=30, **kwargs)  # type: ignore[arg-type]

    def over_tcp(self, **kwargs: object) -> httpx.Client:
        """An httpx client over the TCP listener."""
        assert self.tcp is not None
        return httpx.Client(base_url=f"http://{self.tcp}", timeout=30, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> int:
        code = stop(self.proc)
        assert self.proc.stderr is not None
        self.stderr.append(self.proc.stderr.read())
        return code

    def log(self) -> bytes:
        return b"".join(self.stderr)


def _read_stderr_until(proc: subprocess.Popen[bytes], marker: bytes, timeout: float) -> bytes:
    """Read the service's stderr until a line holding ``marker``; return what was read."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while marker not in seen:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise RuntimeError(f"the service did not print {marker!r}: {seen!r}")
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"the service exited: {seen!r}")
            seen += chunk
    return seen


@contextmanager
def serve_http(root: Path, config: str = "", *, tcp: bool = False) -> Iterator[Served]:
    """``actorbus serve`` on ``root`` with ``config`` (TOML); with a TCP listener if ``tcp``."""
    extra: list[str] = []
    if config:
        path = root / "config.toml"
        path.write_text(config)
        extra += ["--config", str(path)]
    if tcp:
        extra += ["--http", "127.0.0.1:0"]
    proc = start_serve(root, *extra, wait=False)
    served = Served(root, proc)
    # Printed once the service serves: no probe connection, which an allow-list refuses.
    seen = _read_stderr_until(proc, b"stops it\n", 30)
    if tcp:
        if b"HTTP on http://" not in seen:
            seen += _read_stderr_until(proc, b"HTTP on http://", 30)
        line = seen.split(b"HTTP on http://", 1)[1].split(b"/", 1)[0]
        served.tcp = line.decode()
    served.stderr.append(seen)
    try:
        yield served
    finally:
        if proc.poll() is None:
            served.stop()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class _Collector:
    def __init__(self) -> None:
        self.done: list[RawResponse] = []
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self._headers = {}
        self._body = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.done.append(
            RawResponse(self.parser.get_status_code(), self._headers, b"".join(self._body))
        )


def parse_responses(data: bytes) -> list[RawResponse]:
    """Every complete response in ``data`` (a 100 Continue counts as one)."""
    collector = _Collector()
    collector.parser.feed_data(data)
    return collector.done


def connect(path: Path, timeout: float = 30) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(os.fspath(path))
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    chunks: list[bytes] = []
    while True:
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def read_responses(sock: socket.socket, count: int) -> list[RawResponse]:
    """Read until ``count`` complete responses arrived (or the server closed)."""
    collector = _Collector()
    while len(collector.done) < count:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        collector.parser.feed_data(chunk)
    return collector.done


def request_bytes(
    method: str, target: str, body: bytes = b"", *, headers: dict[str, str] | None = None
) -> bytes:
    """One HTTP/1.1 request as a client writes it."""
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost"]
    fields = {"content-type": "application/json", **(headers or {})} if body else headers or {}
    lines += [f"{name}: {value}" for name, value in fields.items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@contextmanager
def serve_http_fresh(config: str = "", *, tcp: bool = False) -> Iterator[Served]:
    """:func:`serve_http` on a fresh short root, removed afterwards."""
    root = short_root()
    try:
        with serve_http(root, config, tcp=tcp) as served:
            yield served
    finally:
        shutil.rmtree(root, ignore_errors=True)
