"""HTTP on a real service process, byte by byte: pipelining, limits, slow clients, framings, fuzz.

Every bad request gets its status or a close, and the service keeps serving others.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from collections.abc import Iterator

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.http_service import (
    Served,
    connect,
    parse_responses,
    read_responses,
    read_until_closed,
    request_bytes,
    serve_http,
)
from support.service import event, short_root

from bus import FrameReader, FrameWriter

CONFIG = """
[server]
max_frame_bytes = 65536

[http]
header_timeout_s = 2
body_timeout_s = 2
max_header_bytes = 8192
"""


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    root = short_root()
    try:
        with serve_http(root, CONFIG) as served:
            with served.uds() as client:
                assert client.post("/v1/sessions/pipe/s1").status_code == 201
            yield served
    finally:
        shutil.rmtree(root, ignore_errors=True)


def still_serving(served: Served) -> None:
    with served.uds() as client:
        assert client.get("/healthz").json() == {"status": "ok"}


def test_pipelined_requests_are_answered_in_order(served: Served) -> None:
    requests = [
        request_bytes("POST", "/schema-recorder/append", event("pipe", "s1", f"p{n}"))
        for n in range(50)
    ]
    requests.insert(10, request_bytes("GET", "/nope"))
    requests.insert(20, request_bytes("GET", "/healthz"))
    with connect(served.sock) as sock:
        sock.sendall(b"".join(requests))
        answers = read_responses(sock, len(requests))
    assert len(answers) == 52
    statuses = [a.status for a in answers]
    assert statuses[10] == 404 and statuses[20] == 200
    appended = [a for i, a in enumerate(answers) if i not in (10, 20)]
    assert all(a.status == 201 for a in appended)
    ids = [msgspec.json.decode(a.body)["record_id"] for a in appended]
    assert ids == [f"p{n}" for n in range(50)]
    with served.uds() as client:
        lines = client.get("/v1/sessions/pipe/s1/events").text.splitlines()
    recorded = [msgspec.json.decode(line)["event"]["record_id"] for line in lines]
    assert [r for r in recorded if r.startswith("p")][-50:] == ids


def test_expect_100_continue_is_answered_before_the_body(served: Served) -> None:
    body = event("pipe", "s1", "continued")
    head = (
        "POST /schema-recorder/append HTTP/1.1\r\nHost: localhost\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Expect: 100-continue\r\n\r\n"
    ).encode()
    with connect(served.sock) as sock:
        sock.sendall(head)
        interim = sock.recv(1024)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        (answer,) = read_responses(sock, 1)
    assert answer.status == 201


def test_connection_close_is_honoured(served: Served) -> None:
    with connect(served.sock) as sock:
        sock.sendall(
            request_bytes("GET", "/healthz", headers={"Connection": "close"})
            + request_bytes("GET", "/healthz")
        )
        data = read_until_closed(sock)
    answers = parse_responses(data)
    assert [a.status for a in answers] == [200]
    assert answers[0].headers["connection"] == "close"


def test_a_post_without_a_length_is_411(served: Served) -> None:
    with connect(served.sock) as sock:
        sock.sendall(b"POST /schema-recorder/append HTTP/1.1\r\nHost: localhost\r\n\r\n")
        (answer,) = read_responses(sock, 1)
    assert answer.status == 411
    assert msgspec.json.decode(answer.body)["error"]["code"] == "LengthRequired"
    still_serving(served)


def test_a_malformed_request_line_is_400_then_closed(served: Served) -> None:
    with connect(served.sock) as sock:
        sock.sendall(b"GET /healthz HTTP/9\x00\r\n\r\n")
        data = read_until_closed(sock)
    (answer,) = parse_responses(data)
    assert answer.status == 400
    assert msgspec.json.decode(answer.body)["error"]["code"] == "InvalidRequest"
    still_serving(served)


def test_100_kb_of_headers_is_431(served: Served) -> None:
    headers = "".join(f"X-Pad-{n}: {'h' * 90}\r\n" for n in range(1100))
    with connect(served.sock) as sock:
        # Closed after answering: the answer is still readable.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n".encode())
        data = read_until_closed(sock)
    (answer,) = parse_responses(data)
    assert answer.status == 431
    assert msgspec.json.decode(answer.body)["error"]["code"] == "HeadersTooLarge"
    still_serving(served)


def test_a_10_mb_body_is_413_without_being_read(served: Served) -> None:
    body = b"x" * (10 << 20)
    with connect(served.sock) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request_bytes("POST", "/schema-recorder/append", body))
        data = read_until_closed(sock)
    (answer,) = parse_responses(data)
    assert answer.status == 413
    assert msgspec.json.decode(answer.body)["error"]["code"] == "FrameTooLarge"
    still_serving(served)


def test_a_chunked_body_over_the_limit_is_413(served: Served) -> None:
    chunk = b"y" * 8192
    head = (
        b"POST /schema-recorder/append HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with connect(served.sock) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + b"".join(b"2000\r\n" + chunk + b"\r\n" for _ in range(16)))
        data = read_until_closed(sock)
    (answer,) = parse_responses(data)
    assert answer.status == 413
    still_serving(served)


def test_headers_sent_one_byte_a_second_time_out_while_others_are_served(served: Served) -> None:
    request = request_bytes("GET", "/healthz")
    with connect(served.sock) as slow:
        sent = 0
        closed = False
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                slow.sendall(request[sent : sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sent += 1
            still_serving(served)  # the service answers others meanwhile
            slow.settimeout(1.0)
            try:
                data = slow.recv(4096)
            except TimeoutError:
                continue
            (answer,) = parse_responses(data + read_until_closed(slow))
            assert answer.status == 408
            closed = True
            break
    assert closed
    assert sent < len(request)  # it was cut off before the request was complete


def test_a_body_that_stalls_times_out(served: Served) -> None:
    body = event("pipe", "s1", "stalled")
    with connect(served.sock) as sock:
        sock.sendall(request_bytes("POST", "/schema-recorder/append", body)[:-10])
        data = read_until_closed(sock)
    (answer,) = parse_responses(data)
    assert answer.status == 408
    assert msgspec.json.decode(answer.body)["error"]["code"] == "RequestTimeout"


def test_the_three_framings_share_one_socket_at_once(served: Served) -> None:
    with (
        connect(served.sock) as http,
        connect(served.sock) as jsonl,
        connect(served.sock) as binary,
    ):
        msgpack = FrameWriter("msgpack")
        for n in range(3):
            http.sendall(request_bytes("GET", "/healthz"))
            jsonl.sendall(b'{"id":%d,"op":"ping"}\n' % n)
            binary.sendall(msgpack.encode({"id": n, "op": "ping"}))
        assert [a.status for a in read_responses(http, 3)] == [200, 200, 200]
        got_jsonl = b""
        while got_jsonl.count(b"\n") < 3:
            got_jsonl += jsonl.recv(4096)
        assert [msgspec.json.decode(line)["id"] for line in got_jsonl.splitlines()] == [0, 1, 2]
        reader = FrameReader(1 << 20, "msgpack")
        frames: list[dict[str, object]] = []
        while len(frames) < 3:
            reader.feed(binary.recv(4096))
            frames += [msgspec.msgpack.decode(frame) for frame in reader.frames()]
        assert [f["result"] for f in frames] == [{"pong": True}] * 3


def test_the_uid_allow_list_refuses_http_too() -> None:
    root = short_root()
    try:
        with serve_http(root, f"[server]\nallowed_uids = [{os.getuid() + 1}]\n") as served:
            with connect(served.sock) as sock:
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(request_bytes("GET", "/healthz"))
                assert read_until_closed(sock) == b""
            assert os.stat(served.sock).st_mode & 0o777 == 0o600
    finally:
        shutil.rmtree(root, ignore_errors=True)


_METHODS = st.sampled_from([b"GET ", b"POST ", b"PUT ", b"HEAD ", b"DELETE ", b"G", b"OPTIONS "])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    head=_METHODS,
    tail=st.one_of(
        st.binary(max_size=400),
        st.lists(
            st.sampled_from([b"/", b"/v1/events", b" HTTP/1.1", b"\r\n", b"Host: localhost",
                             b"Content-Length: 5", b"Transfer-Encoding: chunked", b": ", b"\x00",
                             b"{", b"0\r\n", b"\r\n\r\n", b"Expect: 100-continue"]),
            max_size=30,
        ).map(b"".join),
    ),
)  # fmt: skip
def test_fuzzed_http_bytes_never_stop_the_service(served: Served, head: bytes, tail: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        sock.connect(os.fspath(served.sock))
        try:
            sock.sendall(head + tail)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass
    still_serving(served)
