"""Helpers for the service tests: roots, events, real ``actorbus serve`` processes, raw exchanges.

``python tests/support/service.py load SOCKET USER SESSION NAME COUNT`` is a client
process that pipelines appends and prints ``acked <record_id>`` for each
acknowledgement as soon as its window is answered, then ``done``; it stops quietly
when the server goes away.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import msgspec

from bus import ConnectionBroken, FrameReader, FrameWriter, SyncClient
from contracts import ActorbusError, Framing

SUPPORT_SCRIPT = Path(__file__)
REPO = SUPPORT_SCRIPT.resolve().parents[2]


def rss_bytes(pid: int) -> int:
    """A process's resident memory, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def short_root() -> Path:
    """A fresh root whose socket path fits AF_UNIX's limit (about 100 bytes)."""
    return Path(tempfile.mkdtemp(prefix="ab-svc-", dir="/tmp"))


@contextmanager
def root_dir() -> Iterator[Path]:
    """A short root, removed afterwards."""
    root = short_root()
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def socket_of(root: Path) -> Path:
    return root / "run" / "actorbus.sock"


def event(user: str, session: str, record_id: str, **extra: Any) -> bytes:
    """An event as a producer writes it: the required fields, then any others."""
    head = {"record_id": record_id, "user_id": user, "session_id": session, "source": "test"}
    return msgspec.json.encode({**head, **extra})


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "actorbus", *args]


def run_cli(
    *args: str, input: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        cli(*args), input=input, capture_output=True, timeout=timeout, cwd=REPO, check=False
    )


def start_serve(root: Path, *extra: str, wait: bool = True) -> subprocess.Popen[bytes]:
    """Start ``actorbus serve`` on ``root``; return once it answers ping (if ``wait``)."""
    proc = subprocess.Popen(
        cli("serve", "--root", str(root), *extra),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    if wait:
        wait_for_server(socket_of(root), proc)
    return proc


def wait_for_server(path: Path, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            with SyncClient.connect(path, timeout=5) as client:
                client.request("ping")
            return
        except ConnectionBroken:
            if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                if proc is not None and proc.poll() is None:
                    proc.kill()
                raise RuntimeError("the service did not start") from None
            time.sleep(0.02)


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> int:
    """Signal the process if it runs; return its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def start_load(
    path: Path, user: str, session: str, name: str, count: int
) -> subprocess.Popen[bytes]:
    args = [sys.executable, str(SUPPORT_SCRIPT), "load", str(path), user, session, name]
    return subprocess.Popen(
        [*args, str(count)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO
    )


def acked_ids(output: bytes) -> list[str]:
    return [line.split()[1].decode() for line in output.splitlines() if line.startswith(b"acked ")]


def wait_for_lines(proc: subprocess.Popen[bytes], count: int) -> list[bytes]:
    """Read ``count`` lines from the process's stdout (blocking)."""
    assert proc.stdout is not None
    return [proc.stdout.readline() for _ in range(count)]


async def exchange(
    path: Path, framing: Framing, requests: list[Any], *, answers: int | None = None
) -> list[dict[str, Any]]:
    """Send ``requests`` in one write on a fresh connection; return the decoded messages.

    Reads until ``answers`` messages (default: one per request) arrived or the
    server closed the connection.
    """
    writer = FrameWriter(framing)
    data = b"".join(
        request if isinstance(request, bytes) else writer.encode(request) for request in requests
    )
    want = len(requests) if answers is None else answers
    reader = FrameReader(64 << 20, framing)
    decode = msgspec.json.decode if framing == "jsonl" else msgspec.msgpack.decode
    got: list[dict[str, Any]] = []
    async with await anyio.connect_unix(path) as stream:
        await stream.send(data)
        with anyio.fail_after(30):
            while len(got) < want:
                try:
                    chunk = await stream.receive(1 << 18)
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break
                reader.feed(chunk)
                got.extend(decode(frame) for frame in reader.frames())
    return got


def _load(path: str, user: str, session: str, name: str, count: int) -> int:
    window = 50
    try:
        with SyncClient.connect(path, framing="jsonl", timeout=30) as client:
            client.request("session.open", user_id=user, session_id=session)
            for start in range(0, count, window):
                ids = [f"{name}-{n:06d}" for n in range(start, min(count, start + window))]
                requests = [
                    ("append", {"event": msgspec.Raw(event(user, session, rid, seq=i))})
                    for i, rid in zip(range(start, start + window), ids, strict=False)
                ]
                outcomes = client.pipeline(requests, window=window)
                lines = [
                    f"acked {rid}\n"
                    for rid, outcome in zip(ids, outcomes, strict=True)
                    if not isinstance(outcome, ActorbusError)
                ]
                sys.stdout.write("".join(lines))
                sys.stdout.flush()
    except (ConnectionBroken, ActorbusError, OSError):
        return 0  # the server went away: what was acknowledged is already printed
    sys.stdout.write("done\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    if sys.argv[1] == "load":
        path, user, session, name, count = sys.argv[2:7]
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        sys.exit(_load(path, user, session, name, int(count)))
