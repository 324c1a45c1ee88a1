"""The socket transport's bounds against real server processes: memory, stalls, shutdown, fds.

Each test starts a real server process (the test ops of ``support.socket_ops``, or
``actorbus serve``) and talks to it over a real Unix socket.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from support.service import root_dir, rss_bytes, socket_of, start_serve
from support.service import stop as stop_service
from support.socket_ops import OPS_SCRIPT, short_dir, start_server, stop

from bus import FrameReader, FrameWriter, SyncClient

MiB = 1 << 20


@pytest.fixture
def sock_path() -> Iterator[Path]:
    directory = short_dir()
    yield directory / "s.sock"
    shutil.rmtree(directory, ignore_errors=True)


def server_stats(path: Path) -> dict[str, Any]:
    with SyncClient.connect(path, timeout=10) as client:
        stats: dict[str, Any] = client.request("stats")["server"]
    return stats


def raw_socket(path: Path, timeout: float = 20) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(os.fspath(path))
    return sock


def read_messages(
    sock: socket.socket, framing: Any, count: int | None = None, *, decode: bool = True
) -> list[Any]:
    """Read messages until ``count`` arrived or the server closed the connection."""
    reader = FrameReader(64 * MiB, framing)
    loads = msgspec.json.decode if framing == "jsonl" else msgspec.msgpack.decode
    got: list[Any] = []
    while count is None or len(got) < count:
        try:
            chunk = sock.recv(1 << 20)
        except ConnectionResetError:
            break
        if not chunk:
            break
        reader.feed(chunk)
        frames = reader.frames()
        got.extend(loads(f) for f in frames) if decode else got.extend(len(f) for f in frames)
    return got


# ---- memory follows the bytes bound, not the answers' size ---------------------------------


def test_a_client_that_never_reads_large_answers_holds_server_memory_within_the_bound(
    sock_path: Path,
) -> None:
    # 1,024 pipelined requests (a few KB sent) for 1 MiB answers each, never read.
    proc = start_server(sock_path)
    try:
        before = rss_bytes(proc.pid)
        writer = FrameWriter("msgpack")
        requests = b"".join(
            writer.encode({"id": i, "op": "blob", "size": MiB}) for i in range(1024)
        )
        with raw_socket(sock_path) as sock:
            sock.sendall(requests)
            peak = before
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                peak = max(peak, rss_bytes(proc.pid))
                time.sleep(0.05)
            stats = server_stats(sock_path)
            assert peak - before < 64 * MiB, f"RSS grew by {(peak - before) / MiB:.0f} MiB"
            # What the server holds for that client, as it counts it: at most the
            # bound, plus one answer, plus the first estimates of an op never
            # answered before (a sixteenth of the bound each, sixteen at most).
            assert 0 < stats["queued_bytes"] <= 4 * MiB + MiB + 4 * MiB
            assert stats["write_pauses"] >= 1
            assert stats["inflight"] <= 1024
            # Nothing is lost: the client reads on and gets every answer, in order.
            sizes = read_messages(sock, "msgpack", 1024, decode=False)
        assert len(sizes) == 1024
        assert all(size > MiB for size in sizes)
        assert server_stats(sock_path)["queued_bytes"] == 0
    finally:
        assert stop(proc) == 0


def test_the_total_bytes_bound_holds_across_connections(sock_path: Path) -> None:
    total = 8 * MiB
    proc = start_server(
        sock_path, max_queued_bytes_per_connection=4 * MiB, max_queued_bytes_total=total
    )
    writer = FrameWriter("msgpack")
    requests = b"".join(writer.encode({"id": i, "op": "blob", "size": MiB}) for i in range(64))
    socks = [raw_socket(sock_path) for _ in range(6)]
    try:
        for sock in socks:
            sock.sendall(requests)
        time.sleep(1.5)
        stats = server_stats(sock_path)
        # Over the total, no connection produces more; each holds at most one answer
        # and one estimate beyond what the total admitted.
        assert stats["queued_bytes"] <= total + 6 * 2 * MiB
        for sock in socks:
            assert len(read_messages(sock, "msgpack", 64, decode=False)) == 64
    finally:
        for sock in socks:
            sock.close()
        assert stop(proc) == 0


# ---- timers against buffered data -----------------------------------------------------------


def test_a_stall_longer_than_the_idle_timeout_with_the_frame_buffered_is_answered(
    sock_path: Path,
) -> None:
    proc = start_server(sock_path, idle_timeout_s=0.3)
    try:
        with raw_socket(sock_path) as sock:
            sock.sendall(b'{"id":1,"op":"echo","value":"a"')  # a frame started
            time.sleep(0.1)
            proc.send_signal(signal.SIGSTOP)
            try:
                # The rest of it and the next request land in the kernel's buffer
                # while the server is stopped, for longer than idle_timeout_s.
                sock.sendall(b'}\n{"id":2,"op":"ping"}\n')
                time.sleep(1.0)
            finally:
                proc.send_signal(signal.SIGCONT)
            answers = read_messages(sock, "jsonl", 2)
        assert answers == [
            {"id": 1, "ok": True, "status": 200, "result": "a"},
            {"id": 2, "ok": True, "status": 200, "result": {"pong": True}},
        ]
    finally:
        assert stop(proc) == 0


def test_a_real_stall_mid_frame_is_still_closed_after_the_idle_timeout(sock_path: Path) -> None:
    proc = start_server(sock_path, idle_timeout_s=0.3)
    try:
        with raw_socket(sock_path) as sock:
            sock.sendall(b'{"id":1,"op":"echo","value":"a"')
            answers = read_messages(sock, "jsonl")
        assert [a["error"]["code"] for a in answers] == ["InvalidRequest"]
        assert "idle_timeout_s" in answers[0]["error"]["message"]
    finally:
        assert stop(proc) == 0


# ---- half-close ------------------------------------------------------------------------------


def test_a_snapshot_subscribe_then_a_half_close_gets_every_event_like_socat() -> None:
    count = 11_000
    with root_dir() as root:
        proc = start_serve(root)
        path = socket_of(root)
        try:
            with SyncClient.connect(path, framing="jsonl", timeout=30) as client:
                client.request("session.open", user_id="u", session_id="s")
                for start in range(0, count, 1000):
                    requests = [
                        ("append", {"event": _event(n)}) for n in range(start, start + 1000)
                    ]
                    client.pipeline(requests, window=1000)
            with raw_socket(path, timeout=30) as sock:
                request = {"id": 1, "op": "subscribe", "user_id": "u", "session_id": "s"}
                sock.sendall(msgspec.json.encode({**request, "follow": False}) + b"\n")
                sock.shutdown(socket.SHUT_WR)  # what socat does after its input
                messages = read_messages(sock, "jsonl")  # to the server's close
        finally:
            assert stop_service(proc) == 0
    events = [m for m in messages if m.get("op") == "event"]
    assert len(events) == count
    assert [e["data"]["event"]["record_id"] for e in events[:3]] == ["r0", "r1", "r2"]
    assert messages[-1] == {"id": 1, "ok": True, "status": 200, "result": {"events": count}}


def _event(n: int) -> dict[str, Any]:
    return {"record_id": f"r{n}", "user_id": "u", "session_id": "s", "source": "test", "n": n}


# ---- shutdown answers what the kernel holds -------------------------------------------------


def test_requests_in_the_kernel_buffer_at_sigterm_are_answered_shutting_down(
    sock_path: Path,
) -> None:
    # One request in flight at a time: what follows waits in the kernel's buffer.
    proc = start_server(sock_path, max_inflight_per_connection=1)
    try:
        writer = FrameWriter("jsonl")
        with raw_socket(sock_path) as sock:
            sock.sendall(writer.encode({"id": 0, "op": "slow", "seconds": 1.0, "value": "s"}))
            time.sleep(0.2)
            sock.sendall(b"".join(writer.encode({"id": i, "op": "ping"}) for i in range(1, 4)))
            time.sleep(0.1)
            sock.sendall(b"".join(writer.encode({"id": i, "op": "ping"}) for i in range(4, 7)))
            time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            answers = read_messages(sock, "jsonl")  # to the server's close
        assert proc.wait(20) == 0
    finally:
        stop(proc)
    assert [a["id"] for a in answers] == list(range(7))
    assert answers[0]["result"] == "s"
    assert {a["error"]["code"] for a in answers[1:]} == {"ShuttingDown"}
    assert {a["status"] for a in answers[1:]} == {503}


def test_a_connection_waiting_in_the_backlog_at_sigterm_gets_answers_not_eof(
    sock_path: Path,
) -> None:
    proc = start_server(sock_path)
    try:
        writer = FrameWriter("jsonl")
        proc.send_signal(signal.SIGSTOP)
        try:
            sock = raw_socket(sock_path)  # completes in the kernel, not yet accepted
            sock.sendall(b"".join(writer.encode({"id": i, "op": "ping"}) for i in range(3)))
            proc.send_signal(signal.SIGTERM)
        finally:
            proc.send_signal(signal.SIGCONT)
        with sock:
            answers = read_messages(sock, "jsonl")
        assert proc.wait(20) == 0
    finally:
        stop(proc)
    assert [a["id"] for a in answers] == [0, 1, 2]
    for answer in answers:
        assert answer["ok"] or answer["error"]["code"] == "ShuttingDown"


# ---- running out of file descriptors -----------------------------------------------------


def test_out_of_file_descriptors_at_accept_is_counted_logged_and_recovered(
    sock_path: Path,
) -> None:
    limit = 48

    def lower_the_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    proc = subprocess.Popen(
        [sys.executable, os.fspath(OPS_SCRIPT), os.fspath(sock_path)],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lower_the_limit,
    )
    watcher: SyncClient | None = None
    socks: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while watcher is None:
            try:
                watcher = SyncClient.connect(sock_path, timeout=10)
                watcher.request("ping")
            except Exception:
                watcher = None
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        writer = FrameWriter("jsonl")
        # More connections than the server has descriptors for, each with a request.
        for i in range(limit + 16):
            sock = raw_socket(sock_path, timeout=30)
            sock.sendall(writer.encode({"id": i, "op": "ping"}))
            socks.append(sock)
        time.sleep(1.0)
        stats = watcher.request("stats")["server"]
        assert stats["accept_errors"] >= 1
        assert stats["connections"] < limit
        # Descriptors come free: every waiting connection is accepted and answered.
        answered = 0
        for sock in socks:
            answers = read_messages(sock, "jsonl", 1)
            assert answers == [
                {"id": answers[0]["id"], "ok": True, "status": 200, "result": {"pong": True}}
            ]
            answered += 1
            sock.close()
        assert answered == limit + 16
        assert watcher.request("ping") == {"pong": True}
    finally:
        for sock in socks:
            sock.close()
        if watcher is not None:
            watcher.close()
        assert stop(proc) == 0
    assert proc.stderr is not None
    log = proc.stderr.read().decode()
    lines = [line for line in log.splitlines() if "out of file descriptors" in line]
    assert 1 <= len(lines) <= 2  # rate limited
    assert "EMFILE" in lines[0]
