from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.socket_ops import OPS_SCRIPT, make_handlers, short_dir, start_server, stop

from bus import (
    Client,
    ConnectionBroken,
    FrameReader,
    FrameWriter,
    Part,
    Request,
    SyncClient,
    Topic,
    open_bus,
    serve_unix,
)
from contracts import Framing, InvalidEvent, ServerConfig, ShuttingDown


@pytest.fixture
def sock_path() -> Iterator[Path]:
    directory = short_dir()
    yield directory / "s.sock"
    shutil.rmtree(directory, ignore_errors=True)


async def _answers(sock_path: Path, requests: list[Any]) -> list[Any]:
    """Send ``requests`` in one write (so they are read together); return the answers."""
    stream = await anyio.connect_unix(sock_path)
    async with stream:
        writer = FrameWriter("jsonl")
        await stream.send(b"".join(writer.encode(r) for r in requests))
        reader = FrameReader(1 << 20, "jsonl")
        answers: list[Any] = []
        with anyio.fail_after(10):
            while len(answers) < len(requests):
                reader.feed(await stream.receive())
                answers.extend(msgspec.json.decode(f) for f in reader.frames())
    return answers


@pytest.mark.anyio
async def test_leaving_the_block_removes_the_socket_file(sock_path: Path) -> None:
    async with serve_unix(sock_path, {}):
        assert sock_path.exists()
    assert not sock_path.exists()
    async with serve_unix(sock_path, {}):  # and the path can be served again
        assert sock_path.exists()


@pytest.mark.anyio
async def test_an_op_answers_its_configured_success_status_and_errors_keep_theirs(
    sock_path: Path,
) -> None:
    statuses = {"echo": 201, "slow": 202}
    async with serve_unix(sock_path, make_handlers(), statuses=statuses):
        answers = await _answers(
            sock_path,
            [
                {"id": 1, "op": "echo", "value": 1},
                {"id": 2, "op": "slow", "seconds": 0.01},
                {"id": 3, "op": "created"},
                {"id": 4, "op": "echo", "value": 1, "bad": 1},
                {"id": 5, "op": "add", "a": 1, "b": 2},
            ],
        )
    assert [a["status"] for a in answers] == [201, 202, 201, 400, 200]


@pytest.mark.anyio
async def test_a_batch_handler_takes_a_run_of_its_op_and_answers_each_from_its_part(
    sock_path: Path,
) -> None:
    runs: list[list[Any]] = []
    replies: list[asyncio.Future[Any]] = []

    def echo_many(requests: list[Request]) -> list[Any]:
        # The items of a run share one reply, completed once the run was read whole;
        # a request whose value is "bad" fails alone, before the shared reply.
        values = [r.decode(dict[str, Any]).get("value") for r in requests]
        runs.append(values)
        shared: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        replies.append(shared)
        items: list[Any] = []
        for value in values:
            items.append(ValueError("no value") if value is None else value * 10)
        asyncio.get_running_loop().call_later(0.01, shared.set_result, items)
        return [
            InvalidEvent("bad value") if v == "bad" else Part(shared, i)
            for i, v in enumerate(values)
        ]

    handlers = make_handlers()
    async with serve_unix(sock_path, handlers, batch_handlers={"echo": echo_many}):
        answers = await _answers(
            sock_path,
            [
                {"id": 1, "op": "echo", "value": 1},
                {"id": 2, "op": "echo", "value": 2},
                {"id": 3, "op": "add", "a": 1, "b": 2},
                {"id": 4, "op": "echo", "value": 4},  # a run of one: the plain handler
                {"id": 5, "op": "add", "a": 2, "b": 3},
                {"id": 6, "op": "echo", "value": "bad"},
                {"id": 7, "op": "echo", "value": 7},
                {"id": 8, "op": "echo"},
            ],
        )
    assert [a["id"] for a in answers] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [a.get("result") for a in answers[:5]] == [10, 20, 3, 4, 5]
    assert answers[5]["error"]["code"] == "InvalidEvent"
    assert answers[6]["result"] == 70
    # An exception in the shared reply answers that request 500, never its text.
    assert answers[7]["status"] == 500 and "no value" not in answers[7]["error"]["message"]
    assert runs == [[1, 2], ["bad", 7, None]]


@pytest.mark.anyio
async def test_a_batch_handler_that_raises_fails_its_run_and_the_connection_goes_on(
    sock_path: Path,
) -> None:
    def broken(requests: list[Request]) -> list[Any]:
        raise RuntimeError("a bug in the batch handler")

    async with serve_unix(sock_path, make_handlers(), batch_handlers={"echo": broken}):
        answers = await _answers(
            sock_path,
            [
                {"id": 1, "op": "echo", "value": 1},
                {"id": 2, "op": "echo", "value": 2},
                {"id": 3, "op": "add", "a": 1, "b": 2},
            ],
        )
    assert [a["status"] for a in answers] == [500, 500, 200]
    assert "a bug" not in answers[0]["error"]["message"]


# ---- peer credentials ------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_uid_outside_the_allow_list_is_refused(sock_path: Path) -> None:
    config = ServerConfig(allowed_uids=[os.getuid() + 4242])
    async with serve_unix(sock_path, {}, config) as server:
        client = await Client.connect(sock_path)
        with pytest.raises(ConnectionBroken):
            await client.request("ping")
        await client.aclose()
        assert server.statistics().refused == 1
        assert server.statistics().frames_in == 0


@pytest.mark.anyio
async def test_a_uid_on_the_allow_list_is_served(sock_path: Path) -> None:
    config = ServerConfig(allowed_uids=[os.getuid()])
    async with serve_unix(sock_path, {}, config), await Client.connect(sock_path) as client:
        assert await client.request("ping") == {"pong": True}


# ---- shutdown (in process) ---------------------------------------------------------------


@pytest.mark.anyio
async def test_shutdown_answers_what_was_read_and_late_requests_get_503(sock_path: Path) -> None:
    async with serve_unix(sock_path, make_handlers()) as server:
        stream = await anyio.connect_unix(sock_path)
        writer = FrameWriter("msgpack")
        slow = {"op": "slow", "seconds": 0.3, "value": "done"}
        await stream.send(writer.encode({"id": 1, **slow}) + writer.encode({"id": 2, **slow}))
        while server.inflight < 2:
            await anyio.sleep(0.005)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.aclose)
            while not server.closing:
                await anyio.sleep(0.005)
            assert not sock_path.exists()  # no new client can arrive
            await stream.send(writer.encode({"id": 3, "op": "ping"}))
            answers = await read_all(stream, "msgpack")
    await stream.aclose()
    assert [(a["id"], a["status"]) for a in answers] == [(1, 200), (2, 200), (3, 503)]
    assert answers[2]["error"]["code"] == "ShuttingDown"


@pytest.mark.anyio
async def test_past_the_shutdown_deadline_what_is_left_is_answered_shutting_down(
    sock_path: Path,
) -> None:
    gates: list[asyncio.Future[Any]] = []
    config = ServerConfig(shutdown_deadline_s=0.2)
    async with serve_unix(sock_path, make_handlers(gates=gates), config) as server:
        client = await Client.connect(sock_path)
        async with anyio.create_task_group() as tg:
            outcome: list[Any] = []

            async def ask() -> None:
                outcome.extend(await client.pipeline([("gate", {}), ("ping", {})]))

            tg.start_soon(ask)
            while len(gates) < 1 or server.inflight < 2:
                await anyio.sleep(0.005)
            await server.aclose()
        await client.aclose()
    assert [type(o) for o in outcome] == [ShuttingDown, dict]


@pytest.mark.anyio
async def test_shutdown_ends_a_stream_with_shutting_down(sock_path: Path) -> None:
    topic = Topic("t")
    async with serve_unix(sock_path, make_handlers(topic)) as server:
        client = await Client.connect(sock_path)
        got: list[Any] = []
        async with anyio.create_task_group() as tg:

            async def follow() -> None:
                with pytest.raises(ShuttingDown):
                    async for item in client.subscribe("follow"):
                        got.append(item)
                got.append("ended")

            tg.start_soon(follow)
            while topic.subscriber_count == 0:
                await anyio.sleep(0.005)
            topic.publish("one")
            while not got:
                await anyio.sleep(0.005)
            await server.aclose()
        await client.aclose()
    assert got == ["one", "ended"]
    assert topic.subscriber_count == 0


@pytest.mark.anyio
async def test_stats_report_the_runtime_beside_the_server(sock_path: Path) -> None:
    async with open_bus() as bus:
        bus.topic("watched").subscribe()
        async with serve_unix(sock_path, {}, bus=bus), await Client.connect(sock_path) as client:
            stats = await client.request("stats")
    assert stats["bus"]["topics"] == {"watched": 1}
    assert stats["server"]["connections"] == 1


async def read_all(stream: Any, framing: Framing) -> list[Any]:
    reader = FrameReader(1 << 20, framing)
    decode = msgspec.msgpack.decode if framing == "msgpack" else msgspec.json.decode
    answers = []
    while True:
        try:
            data = await stream.receive()
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return answers
        reader.feed(data)
        answers.extend(decode(f) for f in reader.frames())


# ---- real server processes -------------------------------------------------------------


def test_a_second_server_process_exits_non_zero_within_5_seconds(sock_path: Path) -> None:
    first = start_server(sock_path)
    try:
        second = subprocess.Popen(
            [sys.executable, os.fspath(OPS_SCRIPT), os.fspath(sock_path)],
            stderr=subprocess.PIPE,
        )
        _, stderr = second.communicate(timeout=5)
        assert second.returncode != 0
        assert b"another actorbus server is running" in stderr
        assert len(stderr.strip().splitlines()) == 1
        with SyncClient.connect(sock_path, timeout=5) as client:
            assert client.request("ping") == {"pong": True}
        assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
    finally:
        assert stop(first) == 0


def test_after_kill_9_the_stale_socket_is_replaced_by_the_next_server(sock_path: Path) -> None:
    first = start_server(sock_path)
    first.kill()
    first.wait()
    assert sock_path.exists()  # left behind by the crash
    second = start_server(sock_path)
    try:
        with SyncClient.connect(sock_path, timeout=5) as client:
            assert client.request("echo", value="again") == "again"
    finally:
        assert stop(second) == 0
    assert not sock_path.exists()


def test_sigterm_answers_requests_in_flight_then_exits_0_and_removes_the_socket(
    sock_path: Path,
) -> None:
    proc = start_server(sock_path)
    outcomes: list[Any] = []

    def producer() -> None:
        with SyncClient.connect(sock_path, timeout=20) as client:
            requests = [("slow", {"seconds": 0.3, "value": i}) for i in range(20)]
            outcomes.extend(client.pipeline(requests))

    thread = threading.Thread(target=producer)
    thread.start()
    try:
        with SyncClient.connect(sock_path, timeout=5) as watcher:
            while watcher.request("stats")["server"]["inflight"] < 20:
                time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        thread.join(30)
        code = proc.wait(30)
    finally:
        stop(proc)
    assert code == 0
    assert outcomes == list(range(20))
    assert not sock_path.exists()


# ---- fuzz against a real server process --------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[Path]:
    directory = short_dir()
    path = directory / "f.sock"
    proc = start_server(path, max_frame_bytes=4096, idle_timeout_s=0.5)
    yield path
    assert stop(proc) == 0
    shutil.rmtree(directory, ignore_errors=True)


def exchange(path: Path, data: bytes, framing: Framing, answers: int) -> list[Any]:
    """Send ``data`` and a final ping with id "last"; read answers up to that ping's."""
    writer = FrameWriter(framing)
    reader = FrameReader(1 << 20, framing)
    decode = msgspec.msgpack.decode if framing == "msgpack" else msgspec.json.decode
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(os.fspath(path))
    try:
        sock.sendall(data + writer.encode({"id": "last", "op": "ping"}))
        got: list[Any] = []
        while len(got) < answers + 1:
            chunk = sock.recv(1 << 16)
            assert chunk, "the server closed a connection whose framing was intact"
            reader.feed(chunk)
            got.extend(decode(f) for f in reader.frames())
        return got
    finally:
        sock.close()


def assert_well_formed(answer: Any) -> None:
    assert set(answer) in ({"id", "ok", "status", "result"}, {"id", "ok", "status", "error"})
    if not answer["ok"]:
        assert answer["status"] in {400, 404, 413, 500, 503}
        assert set(answer["error"]) == {"code", "message"}


def assert_alive_and_correct(path: Path) -> None:
    with SyncClient.connect(path, timeout=10) as client:
        assert client.request("add", a=2, b=3) == 5
        assert client.pipeline([("echo", {"value": i}) for i in range(50)]) == list(range(50))


FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
ANY_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
OPS = st.sampled_from(["echo", "add", "ping", "stats", "fail", "busy", "created", "nope"])
# Random op names, but never a streaming op: a stream sends more than one message.
OTHER_OPS = st.text(max_size=10).filter(lambda op: op not in {"stream", "follow", "slow"})


@FUZZ
@given(payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=8))
def test_fuzzed_binary_frames_get_one_answer_each_and_the_server_lives(
    fuzz_server: Path, payloads: list[bytes]
) -> None:
    data = b"".join(len(p).to_bytes(4, "big") + p for p in payloads)
    got = exchange(fuzz_server, data, "msgpack", len(payloads))
    for answer in got:
        assert_well_formed(answer)
    assert got[-1] == {"id": "last", "ok": True, "status": 200, "result": {"pong": True}}
    assert_alive_and_correct(fuzz_server)


@FUZZ
@given(
    requests=st.lists(
        st.fixed_dictionaries({"id": ANY_VALUE, "op": OPS | OTHER_OPS}).flatmap(
            lambda head: st.dictionaries(st.text(max_size=6), ANY_VALUE, max_size=3).map(
                lambda extra: {**extra, **head}
            )
        ),
        min_size=1,
        max_size=8,
    ),
    framing=st.sampled_from(["msgpack", "jsonl"]),
)
def test_fuzzed_requests_get_well_formed_answers_in_order(
    fuzz_server: Path, requests: list[dict[str, Any]], framing: Framing
) -> None:
    writer = FrameWriter(framing)
    data = b"".join(writer.encode(r) for r in requests)
    got = exchange(fuzz_server, data, framing, len(requests))
    for request, answer in zip(requests, got, strict=False):
        assert_well_formed(answer)
        assert answer["id"] == request["id"]
    assert got[-1]["id"] == "last"
    assert_alive_and_correct(fuzz_server)


@FUZZ
@given(lines=st.lists(st.binary(max_size=200).map(lambda b: b.replace(b"\n", b"")), max_size=8))
def test_fuzzed_json_lines_never_break_the_connection(
    fuzz_server: Path, lines: list[bytes]
) -> None:
    data = b'{"id":0,"op":"ping"}\n' + b"".join(line + b"\n" for line in lines)
    blank = sum(1 for line in lines if not line.strip())
    got = exchange(fuzz_server, data, "jsonl", 1 + len(lines) - blank)
    for answer in got:
        assert_well_formed(answer)
    assert got[-1]["id"] == "last"
    assert_alive_and_correct(fuzz_server)


@FUZZ
@given(garbage=st.binary(min_size=1, max_size=6000))
def test_arbitrary_bytes_then_a_hang_up_leave_the_server_alive(
    fuzz_server: Path, garbage: bytes
) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(os.fspath(fuzz_server))
    try:
        sock.sendall(garbage)
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(1 << 16):
            pass  # whatever it answers, the server must close its side after
    except ConnectionResetError:
        pass  # an oversized frame: answered, then closed with our bytes unread
    finally:
        sock.close()
    assert_alive_and_correct(fuzz_server)
