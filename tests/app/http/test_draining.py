"""HTTP while the service drains: late requests get 503 ShuttingDown, accepted ones finish.

A real ``actorbus serve`` process; an append is held by a real ``flock`` this test
takes on the session's log (as a rotation script would), so the service is still
answering it when SIGTERM arrives.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.http_service import (
    RawResponse,
    Served,
    connect,
    parse_responses,
    read_until_closed,
    request_bytes,
    serve_http_fresh,
)
from support.service import event

USER = "drain"


@pytest.fixture
def served() -> Iterator[Served]:
    with serve_http_fresh() as served:
        yield served


def _exchange(path: Path, data: bytes) -> list[RawResponse]:
    with connect(path, timeout=30) as sock:
        sock.sendall(data)
        return parse_responses(read_until_closed(sock))


def _open(served: Served, session: str) -> None:
    request = request_bytes(
        "POST", f"/v1/sessions/{USER}/{session}", headers={"connection": "close"}
    )
    (answer,) = _exchange(served.sock, request)
    assert answer.status == 201


def _append(session: str, record: str) -> bytes:
    return request_bytes("POST", "/schema-recorder/append", event(USER, session, record))


def _wait_until_draining(served: Served) -> RawResponse:
    """Ask ``/readyz`` on fresh connections until the drain shows; return that answer."""
    deadline = time.monotonic() + 20
    while True:
        request = request_bytes("GET", "/readyz", headers={"connection": "close"})
        answers = _exchange(served.sock, request)
        if answers and answers[0].status == 503:
            return answers[0]
        assert answers and answers[0].status == 200, answers
        assert time.monotonic() < deadline, "the service never began draining"
        time.sleep(0.02)


def _recv_some(sock: socket.socket, wait: float) -> bytes:
    sock.settimeout(wait)
    try:
        return sock.recv(1 << 16)
    except TimeoutError:
        return b""
    finally:
        sock.settimeout(30)


def test_requests_read_during_the_drain_get_503_and_the_held_ones_finish(served: Served) -> None:
    _open(served, "held")
    _open(served, "other")
    log = served.root / f"logs/users/{USER}/sessions/held.jsonl"
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    released = False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held = connect(served.sock)
        # Pipelined before the signal: the held append, and one behind it.
        held.sendall(_append("held", "h-1") + _append("other", "o-1"))
        assert _recv_some(held, 0.5) == b"", "the held append was answered under the lock"

        served.proc.send_signal(signal.SIGTERM)
        ready = _wait_until_draining(served)
        assert json.loads(ready.body)["error"]["code"] == "ShuttingDown"

        # Read after the shutdown began: refused, after the answers owed before it.
        held.sendall(_append("other", "o-2") + _append("other", "o-3"))
        assert _recv_some(held, 0.5) == b"", "an answer overtook the held append"
        fcntl.flock(fd, fcntl.LOCK_UN)
        released = True
        answers = parse_responses(read_until_closed(held))
        held.close()
    finally:
        if not released:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    assert [a.status for a in answers] == [201, 201, 503]
    assert [json.loads(a.body)["record_id"] for a in answers[:2]] == ["h-1", "o-1"]
    refused = answers[2]
    assert refused.headers["content-type"] == "application/json"
    assert refused.headers["connection"] == "close"
    error = json.loads(refused.body)["error"]
    assert error["code"] == "ShuttingDown"
    assert "o-2" not in refused.body.decode()
    assert served.proc.wait(30) == 0
    # Acknowledged is recorded; refused is not.
    held_log = log.read_bytes()
    other_log = (served.root / f"logs/users/{USER}/sessions/other.jsonl").read_bytes()
    assert b'"h-1"' in held_log
    assert b'"o-1"' in other_log and b'"o-2"' not in other_log and b'"o-3"' not in other_log


def test_a_connection_opened_during_the_drain_gets_503_for_its_request(served: Served) -> None:
    _open(served, "late")
    log = served.root / f"logs/users/{USER}/sessions/late.jsonl"
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        held = connect(served.sock)
        held.sendall(_append("late", "l-1"))  # keeps the drain going until released
        # Read and waiting for the lock before the signal (accepting is a loop pass).
        assert _recv_some(held, 0.5) == b"", "the held append was answered under the lock"
        served.proc.send_signal(signal.SIGTERM)
        _wait_until_draining(served)
        # A keep-alive client's pipelined appends on a new connection: one answer, then close.
        (answer,) = _exchange(served.sock, _append("late", "l-2") + _append("late", "l-3"))
        assert answer.status == 503
        assert json.loads(answer.body)["error"]["code"] == "ShuttingDown"
        assert answer.headers["connection"] == "close"
        fcntl.flock(fd, fcntl.LOCK_UN)
        (first,) = parse_responses(read_until_closed(held))
        held.close()
    finally:
        os.close(fd)
    assert first.status == 201
    assert served.proc.wait(30) == 0
    recorded = log.read_bytes()
    assert b'"l-1"' in recorded and b'"l-2"' not in recorded
